//! The block-device seam over a real virtio disk: the kernel's `test=block` reads the
//! signature the host wrote into sector 0, writes 64 pages with all requests in flight
//! together, reads them back identical, and is refused past the end; the host then
//! finds the same 64 pages in the image file, so the data reached the disk.

use guest_tests::{scratch_dir, Guest};

/// Byte `i` of page `page` as the kernel's test writes it.
fn pattern(page: u64, i: u64) -> u8 {
    (i.wrapping_mul(31) ^ page.wrapping_mul(7)) as u8
}

#[test]
fn virtio_disk_round_trip_reaches_the_image() {
    let image = scratch_dir().join("block-test.img");
    let mut bytes = vec![0u8; 8 << 20];
    bytes[..16].copy_from_slice(b"PEIOS-BLOCK-TEST");
    std::fs::write(&image, &bytes).expect("write the disk image");
    let out = Guest {
        append: "test=block".into(),
        disk: Some(image.clone()),
        disk_writable: true,
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    out.expect_line("virtio-blk: 16384 sectors (8 MiB)");
    out.expect_line("block: sector 0 holds \"PEIOS-BLOCK-TEST\"");
    out.expect_line("block: 64 pages written and read back identical");
    let written = std::fs::read(&image).expect("read the image back");
    for page in 0..64u64 {
        let at = ((8 + page * 8) * 512) as usize;
        for i in 0..4096u64 {
            assert_eq!(
                written[at + i as usize],
                pattern(page, i),
                "page {page} byte {i} in the image"
            );
        }
    }
}
