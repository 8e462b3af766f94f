//! The scheduler as its tasks' wakers see it: a woken task goes back on the run
//! queue of its CPU, and a wake that needed no queueing is still counted.

use crate::executor::Scheduler;
use crate::task::{RunQueues, TaskRef};
use crate::{CpuId, Platform};

impl<P: Platform> RunQueues for Scheduler<P> {
    fn schedule(&self, task: TaskRef) {
        Scheduler::schedule(self, task);
    }

    fn count_wake(&self, target: CpuId) {
        Scheduler::count_wake(self, target);
    }
}
