//! Request/response links: two back-pressure channels, one per direction.
//!
//! The server ([`Duplex::listen`]) creates `<name>.up` (client to server, which it
//! subscribes to) and `<name>.down` (server to client, which it publishes). A client
//! ([`Duplex::connect`]) subscribes to `.down` and becomes the publisher of `.up`, so one
//! client at a time is connected. Every message starts with an 8-byte little-endian word:
//! 0 for a plain message, a request id for a request, the id with bit 63 set for its reply.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::objects::channel::{
    ChannelConfig, ChannelKeeper, Mode, PendingPublisher, Publisher, Subscriber,
};
use crate::os::wait::Deadline;
use crate::os::watch::FileWatch;
use crate::segment::options::Options;

pub(crate) const REPLY: u64 = 1 << 63;
/// How long a client waiting for a busy link keeps retrying after a close of the link's
/// file (the kernel reports the close just before it releases the closer's locks), and
/// how often.
const AFTER_CLOSE: Duration = Duration::from_secs(1);
const AFTER_CLOSE_NAP: Duration = Duration::from_millis(1);

/// A message received on a [`Duplex`] link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The payload.
    pub data: Vec<u8>,
    /// The request id when the peer waits for a [`Duplex::reply`].
    pub request: Option<u64>,
}

/// One end of a two-way link between two processes.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::Duplex;
/// use std::time::Duration;
///
/// let mut server = Duplex::listen("doc.duplex")?;
/// let t = std::thread::spawn(move || -> shmbus::Result<()> {
///     let req = server.recv()?; // an echo server
///     server.reply(&req, &req.data)
/// });
/// let mut client = Duplex::connect("doc.duplex")?;
/// assert_eq!(client.request(b"ping", Duration::from_secs(5))?, b"ping");
/// t.join().unwrap()?;
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Debug)]
pub struct Duplex {
    // Field order is drop order: the publisher closes its stream before the channels go.
    tx: Publisher,
    rx: Subscriber,
    /// The server keeps the `.up` channel alive (and removes it on drop).
    _up: Option<ChannelKeeper>,
    server: bool,
    next_id: u64,
    /// Messages that arrived while `request` waited for its reply.
    pending: VecDeque<Received>,
    buf: Vec<u8>,
}

impl Duplex {
    /// Starts the server end of link `name`.
    pub fn listen(name: &str) -> Result<Duplex> {
        Self::listen_with(name, &Options::default())
    }

    /// [`Duplex::listen`] with options.
    pub fn listen_with(name: &str, opts: &Options) -> Result<Duplex> {
        let config = ChannelConfig {
            mode: Mode::Backpressure,
            ..ChannelConfig::default()
        };
        // `.up` is created without a publisher: the client becomes it, and must find our
        // subscription already in place.
        let up = ChannelKeeper::create(&format!("{name}.up"), &config, opts)?;
        let rx = Subscriber::open_with(&format!("{name}.up"), opts)?;
        let tx = Publisher::create_with(&format!("{name}.down"), config, opts)?;
        Ok(Duplex {
            tx,
            rx,
            _up: Some(up),
            server: true,
            next_id: 1,
            pending: VecDeque::new(),
            buf: Vec::new(),
        })
    }

    /// Connects to the server of link `name` ([`Error::NotFound`] if it is not listening).
    pub fn connect(name: &str) -> Result<Duplex> {
        Self::connect_with(name, &Options::default())
    }

    /// [`Duplex::connect`], waiting at most `timeout` for the server to listen and for
    /// another client to leave: [`Error::NotFound`] or [`Error::PublisherExists`] when
    /// the time is up. Waits on an inotify watch of the link's files (a client leaving,
    /// even killed, closes them), not by polling; after such a close it retries every millisecond
    /// for up to a second, as the kernel reports a close just before it releases the
    /// closer's locks.
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{Duplex, Options};
    /// use std::time::Duration;
    ///
    /// let client = std::thread::spawn(|| {
    ///     let mut link = Duplex::connect_timeout("doc.duplex.later", Duration::from_secs(10))?;
    ///     link.request(b"ping", Duration::from_secs(10))
    /// });
    /// std::thread::sleep(Duration::from_millis(50));
    /// let mut server = Duplex::listen("doc.duplex.later")?; // after the client started
    /// let req = server.recv()?;
    /// server.reply(&req, b"pong")?;
    /// assert_eq!(client.join().unwrap()?, b"pong");
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn connect_timeout(name: &str, timeout: Duration) -> Result<Duplex> {
        Self::connect_timeout_with(name, timeout, &Options::default())
    }

    /// [`Duplex::connect_timeout`] with options.
    pub fn connect_timeout_with(name: &str, timeout: Duration, opts: &Options) -> Result<Duplex> {
        let deadline = Deadline::after(Some(timeout));
        let waiting = opts
            .clone()
            .wait_for_creation(deadline.remaining().unwrap_or(Duration::MAX));
        // The link first, then the replies' channel: a subscription held while we wait
        // would hold the server's back-pressure publisher back for the client it serves.
        let mut pending = PendingPublisher::open(&format!("{name}.up"), &waiting)?;
        let mut watch: Option<FileWatch> = None;
        let mut retry_until: Option<Deadline> = None;
        let tx = loop {
            pending = match pending.try_attach()? {
                Ok(tx) => break tx,
                Err(pending) => pending,
            };
            if deadline.expired() {
                return Err(pending.exists_error());
            }
            match &mut watch {
                // Look once more: the watch sees only what happens after it exists.
                None => watch = Some(FileWatch::for_close(pending.name().os_name())),
                // A file of the link was closed, maybe by the client, whose lock goes a
                // moment after the event: try again every millisecond for a while.
                Some(_) if retry_until.is_some_and(|t| !t.expired()) => {
                    std::thread::sleep(deadline.cap(AFTER_CLOSE_NAP))
                }
                Some(w) => {
                    if w.wait(deadline) {
                        retry_until = Some(Deadline::after(Some(AFTER_CLOSE)));
                    }
                }
            }
        };
        let waiting = opts
            .clone()
            .wait_for_creation(deadline.remaining().unwrap_or(Duration::MAX));
        let rx = Subscriber::open_with(&format!("{name}.down"), &waiting)?;
        Ok(Duplex::client(tx, rx))
    }

    /// [`Duplex::connect`] with options.
    pub fn connect_with(name: &str, opts: &Options) -> Result<Duplex> {
        let rx = Subscriber::open_with(&format!("{name}.down"), opts)?;
        let tx = Publisher::open_with(&format!("{name}.up"), opts)?;
        Ok(Duplex::client(tx, rx))
    }

    fn client(tx: Publisher, rx: Subscriber) -> Duplex {
        Duplex {
            tx,
            rx,
            _up: None,
            server: false,
            // Ids unique across clients of the same server: replies go to every client.
            next_id: u64::from(std::process::id()) << 32 | 1,
            pending: VecDeque::new(),
            buf: Vec::new(),
        }
    }

    /// Sends a plain message.
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.send_word(0, data, Deadline::after(None))
    }

    /// [`send`](Self::send), waiting at most `timeout` for room ([`Error::Timeout`]).
    pub fn send_timeout(&mut self, data: &[u8], timeout: Duration) -> Result<()> {
        self.send_word(0, data, Deadline::after(Some(timeout)))
    }

    fn send_word(&mut self, word: u64, data: &[u8], deadline: Deadline) -> Result<()> {
        let mut loan = match deadline.remaining() {
            None => self.tx.loan(8 + data.len())?,
            Some(left) => self.tx.loan_timeout(8 + data.len(), left)?,
        };
        loan[..8].copy_from_slice(&word.to_le_bytes());
        loan[8..].copy_from_slice(data);
        loan.commit()?;
        Ok(())
    }

    /// Receives the next message or request.
    pub fn recv(&mut self) -> Result<Received> {
        self.recv_deadline(Deadline::after(None))
    }

    /// [`recv`](Self::recv) waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Received> {
        self.recv_deadline(Deadline::after(Some(timeout)))
    }

    fn recv_deadline(&mut self, deadline: Deadline) -> Result<Received> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(m);
        }
        loop {
            let (word, data) = self.recv_raw(deadline)?;
            if word & REPLY != 0 {
                continue; // a reply nobody waits for any more (its request timed out)
            }
            return Ok(Received {
                data,
                request: (word != 0).then_some(word),
            });
        }
    }

    /// Receives one framed message; on the server, waits through client changes.
    fn recv_raw(&mut self, deadline: Deadline) -> Result<(u64, Vec<u8>)> {
        loop {
            // Read before the receive: if it fails for want of a client, any attach or
            // message since then has changed it.
            let news = self.rx.news();
            let result = match deadline.remaining() {
                None => self.rx.recv_into(&mut self.buf),
                Some(left) => self.rx.recv_timeout_into(&mut self.buf, left),
            };
            match result {
                Ok(()) => break,
                // The server outlives its clients: wait for the next one.
                // Sleeps until the next client attaches (or its first message).
                Err(Error::Disconnected { .. } | Error::PublisherGone { .. }) if self.server => {
                    if !self.rx.wait_for_news(news, deadline) {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if self.buf.len() < 8 {
            return Err(Error::Corrupt {
                name: self.rx.name().describe(),
                reason: format!("a duplex message of {} bytes has no header", self.buf.len()),
            });
        }
        let word = u64::from_le_bytes(self.buf[..8].try_into().expect("8 bytes"));
        Ok((word, self.buf[8..].to_vec()))
    }

    /// Answers a request received with [`recv`](Self::recv).
    pub fn reply(&mut self, request: &Received, data: &[u8]) -> Result<()> {
        self.reply_deadline(request, data, Deadline::after(None))
    }

    /// [`reply`](Self::reply), waiting at most `timeout` for room to send it
    /// ([`Error::Timeout`]: a client that stops reading cannot hold the server forever).
    pub fn reply_timeout(
        &mut self,
        request: &Received,
        data: &[u8],
        timeout: Duration,
    ) -> Result<()> {
        self.reply_deadline(request, data, Deadline::after(Some(timeout)))
    }

    fn reply_deadline(
        &mut self,
        request: &Received,
        data: &[u8],
        deadline: Deadline,
    ) -> Result<()> {
        let Some(id) = request.request else {
            return Err(Error::WrongMode {
                name: self.tx.name().describe(),
                mode: "duplex",
                what: "only requests (from `request`) can be replied to",
            });
        };
        self.send_word(id | REPLY, data, deadline)
    }

    /// Sends a request and waits at most `timeout`, in all, for room to send it and for its
    /// reply ([`Error::Timeout`]).
    /// Messages that arrive meanwhile are kept for [`recv`](Self::recv).
    pub fn request(&mut self, data: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let id = self.next_id & !REPLY;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let deadline = Deadline::after(Some(timeout));
        self.send_word(id, data, deadline)?;
        loop {
            let (word, data) = self.recv_raw(deadline)?;
            if word == id | REPLY {
                return Ok(data);
            }
            if word & REPLY == 0 {
                self.pending.push_back(Received {
                    data,
                    request: (word != 0).then_some(word),
                });
            }
        }
    }
}
