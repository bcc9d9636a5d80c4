//! The errors of opening, creating and removing a named object, with what to do about them.

use std::io;

use super::name::Name;
use super::options::Owners;
use crate::error::{Error, Result};
use crate::os::sys::{self, FileStat, FileType};

pub(super) fn open_error(name: &Name, e: io::Error) -> Error {
    if sys::is_symlink_error(&e) {
        return Error::NotRegularFile {
            name: name.describe(),
            found: FileType::Symlink.describe(),
        };
    }
    if sys::is_no_device_error(&e) {
        // A socket (or a FIFO opened write-only without a reader).
        let found = sys::stat_shm(name.os_name()).map_or(FileType::Other, |st| st.file_type);
        return Error::NotRegularFile {
            name: name.describe(),
            found: found.describe(),
        };
    }
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound {
            name: name.describe(),
        },
        io::ErrorKind::PermissionDenied => permission_error(name, "open"),
        _ => os_error(name, "open", e),
    }
}

/// The default owner check (see [`Options::allow_owner`](crate::Options::allow_owner)).
pub(super) fn check_owner(name: &Name, stat: &FileStat, owners: &Owners) -> Result<()> {
    let me = sys::euid();
    if owners.accepts(stat.uid, me) {
        return Ok(());
    }
    Err(Error::UntrustedOwner {
        name: name.describe(),
        owner: stat.uid,
        expected: match owners {
            Owners::Only(uids) => uids.first().copied().unwrap_or(me),
            _ => me,
        },
    })
}

pub(super) fn permission_error(name: &Name, action: &'static str) -> Error {
    let (owner, mode) = sys::stat_shm(name.os_name())
        .map(|st| (st.uid, st.mode))
        .unwrap_or((u32::MAX, 0));
    Error::PermissionDenied {
        name: name.describe(),
        action,
        owner,
        mode,
    }
}

pub(crate) fn os_error(name: &Name, action: &'static str, source: io::Error) -> Error {
    Error::Os {
        name: name.describe(),
        action,
        source,
    }
}
