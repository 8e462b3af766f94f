//! What a page migration reports for one page (`move_pages`' `status` entry): the
//! answer shared by the moves of private, page-cache and KSM pages.

use crate::frame::NodeId;

/// What `move_pages` reports for one page (its `status` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageStatus {
    /// The page is (now) on this node.
    Node(NodeId),
    /// `-ENOENT`: nothing resident there.
    NotPresent,
    /// `-EFAULT`: no mapping there.
    Unmapped,
    /// `-EACCES`: the frame is shared and `MPOL_MF_MOVE_ALL` was not given.
    Shared,
    /// `-EBUSY`: the page could not be moved now.
    Busy,
    /// `-ENOMEM`: no frame on the target node.
    NoMemory,
}

impl PageStatus {
    /// The `int` `move_pages` stores: the node, or a negative errno.
    pub fn as_status(self) -> i32 {
        match self {
            PageStatus::Node(n) => n.0 as i32,
            PageStatus::NotPresent => -2,
            PageStatus::Unmapped => -14,
            PageStatus::Shared => -13,
            PageStatus::Busy => -16,
            PageStatus::NoMemory => -12,
        }
    }
}
