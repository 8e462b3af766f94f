//! The Peios kernel: boots through PVH, brings up every CPU with its own executor, and
//! runs the guest test selected on the command line.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod arch;
mod boot_info;
mod cmdline;
mod executor;
mod fs;
mod initramfs;
mod interrupts;
mod ktest;
mod ktest_frames;
mod logger;
mod mem;
mod memd;
mod panic;
mod proc;
mod procfs;
mod random;
mod registry;
mod smp;
mod syscall;
mod time;
mod topology;
mod tunable;
mod vfs;
mod virtio_blk;
mod watchdog;

use arch::{apic, cpu, gdt, idt, paging, percpu};
use drivers::debug_exit::{exit_qemu, ExitCode};
use mem::bootstrap::{BootstrapFrames, PhysRange};
use sched::CpuId;

/// Rust entry on the boot CPU, called from `boot.rs` with the PVH start-info address:
/// moves the image to its random address first (KASLR), then boots from there.
#[unsafe(no_mangle)]
extern "C" fn kernel_entry(start_info: u64) -> ! {
    // SAFETY: the first Rust code on the boot CPU: nothing holds image pointers yet.
    unsafe { arch::kaslr::relocate(kernel_main, start_info) };
    kernel_main(start_info)
}

extern "C" fn kernel_main(start_info: u64) -> ! {
    percpu::install_placeholder();
    logger::init(log::LevelFilter::Info);
    // SAFETY: `start_info` is what QEMU passed in EBX at the PVH entry.
    let boot = match unsafe { boot_info::parse(start_info) } {
        Ok(boot) => boot,
        Err(e) => panic!("unusable PVH start info: {e:?}"),
    };
    let args = cmdline::Args::parse(boot.cmdline());
    log::set_max_level(args.log_level);
    log::info!("Peios kernel booting; command line {:?}", boot.cmdline());
    if boot.cmdline_truncated {
        log::warn!(
            "command line longer than {} bytes: the rest was ignored",
            boot_info::COMMAND_LINE_SIZE - 1
        );
    }

    let mut features = cpu::features();
    features.smap &= !args.nosmap;
    arch::kpti::init(args.kpti, features.meltdown);
    cpu::init_control_registers(&features);
    if features.smap {
        arch::uaccess::set_smap_enabled();
    }
    if features.pku {
        arch::usermode::set_pku_enabled();
        mm::aspace::set_pkeys_supported(true);
    }
    mm::aspace::set_task_policy_hook(syscall::current_thread_policy);
    mm::hugetlb_file::set_unmap_hook(memd::hugetlb_unmap::unmap_everywhere);
    mm::pagecache::set_hole_unmap_hook(memd::shmem_hole::unmap_everywhere);

    let (image_start, image_end) = paging::kernel_image_phys();
    let mut reserved = [PhysRange {
        start: image_start,
        end: image_end,
    }; 2];
    if let Some((start, size)) = boot.initrd {
        reserved[1] = PhysRange {
            start,
            end: start + size,
        };
    }
    let mut frames = BootstrapFrames::new(&boot, &reserved);
    let ram_bytes = frames.free_bytes();
    let ram_end = boot
        .memory_map()
        .iter()
        .filter(|r| r.kind == boot_info::E820_RAM)
        .map(|r| r.end())
        .max()
        .unwrap_or(0);
    let max_phys = ram_end.max(1 << 32).next_multiple_of(1 << 30);
    // KASLR: the direct map (and so the heap inside it) moves every boot.
    let mut seed = [0u8; 8];
    random::fill(&mut seed);
    let root = paging::init(
        &mut frames,
        max_phys,
        features.huge_1g,
        u64::from_le_bytes(seed),
    );
    mem::pagetable::set_kernel_root();
    // The boot arena; the heap grows from the frame allocator past it, up to a quarter
    // of RAM (so userland cannot turn all memory into kernel objects).
    let heap_bytes = (ram_bytes / 32).clamp(16 << 20, 256 << 20) & !((2 << 20) - 1);
    let heap_limit = ram_bytes / 4;
    let heap_phys = frames
        .take(heap_bytes, 2 << 20)
        .expect("no memory for the kernel heap");
    // SAFETY: the region was just removed from the free ranges and is direct-mapped.
    unsafe { mem::heap::init(heap_phys, heap_bytes, heap_limit) };
    arch::entry_area::init(root.as_u64());
    arch::kpti::build_entry_text();
    log::info!(
        "memory: {} MiB usable, heap {} MiB (grows to {} MiB), direct map {} GiB ({} pages), features {:?}",
        ram_bytes >> 20,
        heap_bytes >> 20,
        heap_limit >> 20,
        max_phys >> 30,
        if features.huge_1g { "1 GiB" } else { "2 MiB" },
        features
    );
    kprintln!("KPTI: {}", if arch::kpti::enabled() { "on" } else { "off" });
    kprintln!(
        "KASLR: direct map at {:#x}, heap at {:#x}, kernel image at {:#x}",
        paging::phys_offset(),
        paging::phys_offset() + heap_phys,
        paging::KERNEL_VMA + paging::kernel_image_phys().0 + arch::kaslr::delta()
    );

    let topo = topology::discover(boot.rsdp);
    time::init(topo.pm_timer);
    time::init_realtime();

    let bsp_apic = cpu::boot_apic_id();
    let cpus = topology::assign_cpu_ids(&topo, bsp_apic);
    let bsp = percpu::get(CpuId(0)).expect("boot CPU block");
    percpu::install(bsp);
    gdt::init_cpu();
    idt::load();
    // The legacy PICs are masked while the firmware's virtual-wire LINT0 still passes
    // their output to the CPU: masking then withdraws the PIT interrupt the firmware left
    // pending. Masked after LINT0 (QEMU TCG), that request stays raised and is later
    // delivered as vector -1 (a #GP in the kernel).
    drivers::pit::disable_legacy_pic();
    apic::init_local();
    arch::usermode::init_cpu();
    let per_ms = apic::calibrate_timer(time::pm_delay_us);
    log::info!(
        "local APIC: {} mode, timer {} ticks/ms",
        if apic::x2apic_mode() {
            "x2APIC"
        } else {
            "xAPIC"
        },
        per_ms
    );
    arch::trap::install_handlers(arch::trap::KernelTrapHandlers {
        interrupt: interrupts::handle_interrupt,
        user_copy_fault: syscall::fault::resolve_kernel_access,
    });
    topology::init_ioapic(&topo, bsp_apic);
    x86_64::instructions::interrupts::enable();
    topology::check_legacy_irq_routing(&topo);

    executor::init(cpus);
    report_cpu_online(CpuId(0));
    let online = smp::start_aps(cpus, root.as_u64(), ap_main);
    log::info!("SMP: {online} of {cpus} cpus online");

    let nodes = mem::numa::split_by_node(frames.ranges(), &topo);
    topology::report(&topo, &nodes);
    mem::frames::init(&nodes, &topo, online);
    mm::cpu::set_current_cpu_hook(percpu::current_cpu);
    mm::cpu::set_relax_hook(cpu::relax);
    mm::kmem::set_short_hook(mem::heap::near_cap);
    registry::init();
    initramfs::init(boot.initrd);
    fs::mount_all();
    virtio_blk::probe();
    fs::blockdev::register_disks();
    memd::swap::init();
    memd::reclaim::start();
    match args.root {
        Some(disk) => fs::ext4::mount_root(disk),
        None => {
            fs::ext4::mount_first_disk("/mnt");
        }
    }

    log::info!("boot complete in {} ms", time::now_ns() / 1_000_000);
    match args.test {
        Some(name) => {
            if !ktest::spawn(name) {
                panic!("unknown test {name:?}");
            }
        }
        None => {
            watchdog::start(online);
            memd::khugepaged::start();
            memd::hung::start();
            start_init(&args)
        }
    }
    executor::scheduler().run()
}

/// Where `qemu-run.sh --run` leaves the program's argv in the initramfs: NUL-terminated
/// strings, the program's own path first. A file instead of the kernel command line,
/// which is short (and whose overflow would overwrite the boot information).
const RUN_ARGS_FILE: &str = "/etc/run.args";

/// The swap devices `qemu-run.sh --swap` lists in the initramfs for init to turn on
/// (one path a line).
const SWAPDEV_FILE: &str = "/etc/swapdev";

/// Runs `/init` from the initramfs as pid 1; without an initramfs the boot ends here.
/// With a program to run (`/etc/run.args`, or `init.run=PATH init.arg=A ...` on the
/// command line), init gets `--run` and that argv.
fn start_init(args: &cmdline::Args) {
    if initramfs::lookup("/init").is_none() {
        log::info!("no /init in the initramfs: nothing to run");
        exit_qemu(ExitCode::Success);
        return;
    }
    let mut argv: alloc::vec::Vec<alloc::vec::Vec<u8>> = alloc::vec![b"/init".to_vec()];
    // With an ext4 root, init's `/etc` is the image's: the swap devices the initramfs
    // lists go to init as arguments.
    if args.root.is_some() {
        if let Some(list) = initramfs::lookup(SWAPDEV_FILE) {
            for device in list
                .split(|&b| b == b'\n')
                .map(|l| l.split(|&b| b == b'#').next().unwrap_or(l).trim_ascii())
                .filter(|l| !l.is_empty())
            {
                argv.push(b"--swapdev".to_vec());
                argv.push(device.to_vec());
            }
        }
    }
    if let Some(run) = args.init_run {
        argv.push(b"--run".to_vec());
        argv.push(run.as_bytes().to_vec());
        argv.extend(args.init_args().map(|a| a.as_bytes().to_vec()));
    } else if let Some(file) = initramfs::lookup(RUN_ARGS_FILE) {
        argv.push(b"--run".to_vec());
        argv.extend(
            file.strip_suffix(b"\0")
                .unwrap_or(file)
                .split(|&b| b == 0)
                .map(<[u8]>::to_vec),
        );
    }
    match proc::exec::spawn_init("/init", &argv) {
        Ok((thread, ctx)) => syscall::entry::start(thread, ctx),
        Err(e) => panic!("cannot start /init: {e:?}"),
    }
}

fn report_cpu_online(cpu: CpuId) {
    let block = percpu::current();
    kprintln!(
        "CPU {} online: apic {} node {}",
        cpu.0,
        apic::hardware_id(),
        block.node
    );
}

fn ap_main(cpu: CpuId) -> ! {
    x86_64::instructions::interrupts::enable();
    report_cpu_online(cpu);
    executor::scheduler().run()
}
