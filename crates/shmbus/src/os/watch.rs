//! Waiting for a file of the shared-memory directory to be created or written, or closed,
//! with inotify: what an opener does while an object does not exist yet, or exists but its
//! creator has not finished it, and what a would-be publisher does while another holds
//! the channel. No sleeping and polling: the kernel reports every creation,
//! size change and write of the file (the creator writes its `READY` word through the file
//! as well as through its mapping, so that finishing an object is an event too).
//!
//! A watch sees the events that happen after [`FileWatch::new`] returns, so a caller makes
//! the watch first, then looks at the file, then waits: nothing that happens between the
//! look and the wait is missed.
//!
//! Where inotify is not available (no more instances or watches for this user:
//! `fs.inotify.max_user_instances`), a [`FileWatch`] waits in short naps instead
//! ([`FALLBACK_NAP`]); `SHMBUS_TEST_NO_INOTIFY=1` forces that, so the fallback is tested.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::os::sys::SHM_DIR;
use crate::os::wait::Deadline;
use crate::os::watcher::Interest;

/// A watch on one file name of the shared-memory directory: inotify, or naps where inotify
/// is not available.
#[derive(Debug)]
pub(crate) struct FileWatch {
    /// The inotify instance; `None` when it could not be made (or failed): naps.
    fd: Option<OwnedFd>,
    /// The file's name in the directory (no leading `/`).
    file: Vec<u8>,
}

impl FileWatch {
    /// Watches for `os_name` (`/shmbus.x`) being created, resized or written (its
    /// creator finishing it): what an opener waits for.
    pub(crate) fn for_creation(os_name: &str) -> FileWatch {
        FileWatch::new(os_name, Interest::Creation.events() | WatchFlags::ONLYDIR)
    }

    /// Watches for `os_name` being closed by anyone (a lock holder leaving) or removed.
    /// The watcher must not open and close the file itself while it waits.
    pub(crate) fn for_close(os_name: &str) -> FileWatch {
        FileWatch::new(os_name, Interest::Close.events() | WatchFlags::ONLYDIR)
    }

    /// Watches the shared-memory directory for `events` on `os_name`, or prepares to nap
    /// when inotify is not available.
    fn new(os_name: &str, events: WatchFlags) -> FileWatch {
        let fd = if testing_fallback() {
            None
        } else {
            inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
                .and_then(|fd| inotify::add_watch(&fd, SHM_DIR, events).map(|_| fd))
                .ok()
        };
        FileWatch {
            fd,
            file: os_name.trim_start_matches('/').as_bytes().to_vec(),
        }
    }

    /// Whether the watch is inotify (not naps).
    #[cfg(test)]
    pub(crate) fn is_inotify(&self) -> bool {
        self.fd.is_some()
    }

    /// Waits until an event names the file (or the kernel's queue overflowed, which may
    /// have hidden one), or the deadline passes; with naps, one nap of at most
    /// [`FALLBACK_NAP`]. Returns whether to look at the file again before the deadline
    /// (`false`: it passed).
    pub(crate) fn wait(&mut self, deadline: Deadline) -> bool {
        if deadline.expired() {
            return false;
        }
        match self.inotify_wait(deadline) {
            Some(Ok(looked)) => looked,
            Some(Err(_)) => {
                self.fd = None; // broken: nap from now on
                true
            }
            None => {
                std::thread::sleep(deadline.cap(FALLBACK_NAP));
                true
            }
        }
    }

    /// The inotify wait, `None` without inotify.
    fn inotify_wait(&mut self, deadline: Deadline) -> Option<io::Result<bool>> {
        let fd = self.fd.as_ref()?;
        Some(loop {
            match drain(fd, &self.file) {
                Ok(true) => break Ok(true),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
            let timeout = deadline.remaining().map(|d| Timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            if timeout.is_some_and(|t| t.tv_sec == 0 && t.tv_nsec == 0) {
                break Ok(false);
            }
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(0) => break Ok(false),
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => break Err(e.into()),
            }
        })
    }
}

/// Reads every queued event of `fd`; whether one named `file`.
fn drain(fd: &OwnedFd, file: &[u8]) -> io::Result<bool> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    let mut hit = false;
    loop {
        match reader.next() {
            Ok(event) => {
                hit |= event.events().contains(ReadFlags::QUEUE_OVERFLOW)
                    || event
                        .file_name()
                        .is_some_and(|n: &CStr| n.to_bytes() == file);
            }
            Err(Errno::AGAIN) => return Ok(hit),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// How long the fallback naps between looks when inotify is not available.
pub(crate) const FALLBACK_NAP: Duration = Duration::from_millis(5);

/// Whether tests asked for the fallback (`SHMBUS_TEST_NO_INOTIFY=1`), read once.
fn testing_fallback() -> bool {
    static NO_INOTIFY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NO_INOTIFY.get_or_init(|| std::env::var_os("SHMBUS_TEST_NO_INOTIFY").is_some_and(|v| v == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        format!("/shmbus-watch-test.{tag}.{}", std::process::id())
    }

    #[test]
    fn a_creation_after_the_watch_is_seen() {
        let name = unique("create");
        let mut watch = FileWatch::for_creation(&name);
        assert!(watch.is_inotify());
        let path = format!("{SHM_DIR}{name}");
        let t = std::thread::spawn({
            let path = path.clone();
            move || std::fs::write(path, b"x").unwrap()
        });
        assert!(watch.wait(Deadline::after(Some(Duration::from_secs(10)))));
        t.join().unwrap();
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn other_files_do_not_end_the_wait() {
        let name = unique("mine");
        let other = format!("{SHM_DIR}{}", unique("other"));
        let mut watch = FileWatch::for_creation(&name);
        assert!(watch.is_inotify());
        std::fs::write(&other, b"x").unwrap();
        let woke = watch.wait(Deadline::after(Some(Duration::from_millis(50))));
        std::fs::remove_file(other).unwrap();
        assert!(!woke);
    }

    #[test]
    fn a_write_is_an_event() {
        let name = unique("write");
        let path = format!("{SHM_DIR}{name}");
        std::fs::write(&path, b"x").unwrap();
        let mut watch = FileWatch::for_creation(&name);
        assert!(watch.is_inotify());
        assert!(!watch.wait(Deadline::after(Some(Duration::ZERO))));
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_at(&file, b"y", 0).unwrap();
        assert!(watch.wait(Deadline::after(Some(Duration::from_secs(10)))));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_close_by_another_holder_is_seen() {
        let name = unique("close");
        let path = format!("{SHM_DIR}{name}");
        std::fs::write(&path, b"x").unwrap();
        let held = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut watch = FileWatch::for_close(&name);
        assert!(!watch.wait(Deadline::after(Some(Duration::ZERO))));
        let t = std::thread::spawn(move || drop(held));
        assert!(watch.wait(Deadline::after(Some(Duration::from_secs(10)))));
        t.join().unwrap();
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn without_inotify_a_wait_is_one_short_nap() {
        let mut watch = FileWatch {
            fd: None,
            file: b"x".to_vec(),
        };
        let start = std::time::Instant::now();
        assert!(watch.wait(Deadline::after(Some(Duration::from_secs(10)))));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(!watch.wait(Deadline::after(Some(Duration::ZERO))));
    }
}
