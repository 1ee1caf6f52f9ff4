//! QMP for the VM runner's poll loop: nothing here blocks, and every step
//! of the conversation has its own deadline.
//!
//! QEMU can stop answering at any moment: frozen (SIGSTOP, a debugger, a
//! host under memory pressure) before it opened its socket, after it
//! accepted the connection but before its greeting, or in the middle of a
//! run. A blocking client cannot tell that from a slow QEMU and waits
//! forever; worse, a Unix `connect()` to a listener whose backlog is full
//! blocks without any timeout. So the socket is non-blocking, the
//! conversation is a state machine advanced by [`QmpWatch::poll`] from the
//! runner's loop, and each step (connect, greeting, `qmp_capabilities`,
//! every command's reply) has a limit in [`QmpLimits`]. A missed limit is
//! an error naming the step; the runner then kills QEMU.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The limits of the QMP conversation, one per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QmpLimits {
    /// From QEMU's start until its QMP socket accepts a connection (QEMU
    /// opens it while parsing its options, well within a second).
    pub connect: Duration,
    /// From the connection until QEMU's greeting (sent from its main loop
    /// as soon as it runs).
    pub greeting: Duration,
    /// From a command (`qmp_capabilities`, the liveness query, `quit`)
    /// until its reply. QEMU answers from its main loop, which TCG's vCPU
    /// threads do not hold: milliseconds, even with both host cores busy.
    pub reply: Duration,
    /// How often the runner asks a connected QEMU whether it is alive.
    pub heartbeat: Duration,
}

impl Default for QmpLimits {
    fn default() -> Self {
        QmpLimits {
            connect: Duration::from_secs(10),
            greeting: Duration::from_secs(10),
            reply: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
        }
    }
}

/// The step of the conversation that missed its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    Greeting,
    Capabilities,
    /// The reply to a command (its QMP name).
    Reply(&'static str),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Connect => write!(f, "connect"),
            Step::Greeting => write!(f, "greeting"),
            Step::Capabilities => write!(f, "qmp_capabilities"),
            Step::Reply(cmd) => write!(f, "reply to {cmd}"),
        }
    }
}

/// A step that missed its limit: what the runner reports before SIGKILL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTimeout {
    pub step: Step,
    pub limit: Duration,
}

impl std::fmt::Display for StepTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.step {
            Step::Connect => "QEMU's QMP socket did not accept a connection",
            Step::Greeting => "QEMU accepted the QMP connection but sent no greeting",
            Step::Capabilities => "QEMU did not answer qmp_capabilities",
            Step::Reply(_) => "QEMU stopped answering QMP",
        };
        write!(
            f,
            "QMP {} limit: {what} within {} s (QEMU frozen or wedged)",
            self.step,
            self.limit.as_secs()
        )
    }
}

enum State {
    /// No connection yet; QEMU started at `since`.
    Connecting { since: Instant },
    /// Connected at `since`, waiting for the greeting.
    Greeting { since: Instant },
    /// `qmp_capabilities` sent at `since`.
    Negotiating { since: Instant },
    /// Commands may be sent; `pending` is the one awaiting its reply.
    Ready {
        pending: Option<(&'static str, Instant)>,
        last_sent: Instant,
    },
    /// QEMU closed the socket (it is exiting); nothing more to say.
    Closed,
}

/// One VM's QMP conversation. Create it right after spawning QEMU and
/// call [`QmpWatch::poll`] from the runner's loop.
pub struct QmpWatch {
    path: PathBuf,
    limits: QmpLimits,
    stream: Option<UnixStream>,
    state: State,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    shutdown_reason: Option<String>,
}

impl QmpWatch {
    /// A watch for QEMU's socket `path`, QEMU having been started just now.
    pub fn new(path: &Path, limits: QmpLimits) -> QmpWatch {
        QmpWatch {
            path: path.to_path_buf(),
            limits,
            stream: None,
            state: State::Connecting {
                since: Instant::now(),
            },
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            shutdown_reason: None,
        }
    }

    /// The reason of QEMU's `SHUTDOWN` event, with `_` for `-`
    /// (`guest_shutdown`, `guest_reset`, `guest_panic`, ...).
    pub fn shutdown_reason(&self) -> Option<&str> {
        self.shutdown_reason.as_deref()
    }

    /// Whether QEMU has answered everything asked so far in time.
    pub fn answering(&self) -> bool {
        match self.state {
            State::Ready { pending, .. } => {
                pending.is_none_or(|(_, at)| at.elapsed() <= self.limits.reply)
            }
            _ => false,
        }
    }

    /// Advances the conversation without blocking: connects, reads the
    /// greeting, replies and events, sends the liveness query. Errs when
    /// the current step is past its limit.
    pub fn poll(&mut self) -> Result<(), StepTimeout> {
        let now = Instant::now();
        if let State::Connecting { since } = self.state {
            match connect_nonblocking(&self.path) {
                Some(s) => {
                    self.stream = Some(s);
                    self.state = State::Greeting { since: now };
                }
                None => {
                    return if now - since > self.limits.connect {
                        Err(self.timeout(Step::Connect))
                    } else {
                        Ok(())
                    };
                }
            }
        }
        self.flush();
        for msg in self.read_messages() {
            self.handle(msg, now);
        }
        match self.state {
            State::Greeting { since } if now - since > self.limits.greeting => {
                Err(self.timeout(Step::Greeting))
            }
            State::Negotiating { since } if now - since > self.limits.reply => {
                Err(self.timeout(Step::Capabilities))
            }
            State::Ready {
                pending: Some((cmd, at)),
                ..
            } if now - at > self.limits.reply => Err(self.timeout(Step::Reply(cmd))),
            State::Ready {
                pending: None,
                last_sent,
            } if now - last_sent >= self.limits.heartbeat => {
                self.send("query-status", now);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Asks QEMU to quit, if the conversation is far enough for commands;
    /// returns whether the request went out. The caller waits for QEMU's
    /// exit on its own clock.
    pub fn quit(&mut self) -> bool {
        if !matches!(self.state, State::Ready { .. }) {
            return false;
        }
        self.send("quit", Instant::now());
        self.outbuf.is_empty()
    }

    /// Reads what QEMU wrote last (a SHUTDOWN event just before it
    /// exited); never blocks, ignores errors.
    pub fn drain(&mut self) {
        let now = Instant::now();
        for msg in self.read_messages() {
            self.handle(msg, now);
        }
    }

    fn timeout(&self, step: Step) -> StepTimeout {
        let limit = match step {
            Step::Connect => self.limits.connect,
            Step::Greeting => self.limits.greeting,
            Step::Capabilities | Step::Reply(_) => self.limits.reply,
        };
        StepTimeout { step, limit }
    }

    fn send(&mut self, cmd: &'static str, now: Instant) {
        self.outbuf
            .extend_from_slice(format!("{{\"execute\":\"{cmd}\"}}\n").as_bytes());
        self.flush();
        self.state = match self.state {
            State::Greeting { .. } | State::Negotiating { .. } => State::Negotiating { since: now },
            _ => State::Ready {
                pending: Some((cmd, now)),
                last_sent: now,
            },
        };
    }

    fn flush(&mut self) {
        let Some(s) = self.stream.as_mut() else {
            return;
        };
        while !self.outbuf.is_empty() {
            match s.write(&self.outbuf) {
                Ok(0) => break,
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock: QEMU is not reading; the step's limit decides.
                // Other errors: QEMU went away; its exit decides.
                Err(_) => break,
            }
        }
    }

    /// The complete JSON lines QEMU sent since the last call.
    fn read_messages(&mut self) -> Vec<serde_json::Value> {
        let Some(s) = self.stream.as_mut() else {
            return Vec::new();
        };
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    self.state = State::Closed;
                    self.stream = None;
                    break;
                }
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.state = State::Closed;
                    self.stream = None;
                    break;
                }
            }
        }
        let mut out = Vec::new();
        while let Some(nl) = self.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.inbuf.drain(..=nl).collect();
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                out.push(v);
            }
        }
        out
    }

    fn handle(&mut self, msg: serde_json::Value, now: Instant) {
        if let Some(event) = msg.get("event").and_then(|e| e.as_str()) {
            if event == "SHUTDOWN" {
                self.shutdown_reason = msg
                    .pointer("/data/reason")
                    .and_then(|r| r.as_str())
                    .map(|r| r.replace('-', "_"));
            }
            return;
        }
        let is_reply = msg.get("return").is_some() || msg.get("error").is_some();
        match self.state {
            State::Greeting { .. } if msg.get("QMP").is_some() => {
                self.send("qmp_capabilities", now);
            }
            State::Negotiating { .. } if is_reply => {
                self.state = State::Ready {
                    pending: None,
                    last_sent: now,
                };
            }
            State::Ready { last_sent, .. } if is_reply => {
                self.state = State::Ready {
                    pending: None,
                    last_sent,
                };
            }
            _ => {}
        }
    }
}

/// One non-blocking connection attempt: `None` while the socket is not
/// there, refuses, or its backlog is full (a frozen QEMU that never
/// accepts); `std`'s `UnixStream::connect` would block on the latter.
fn connect_nonblocking(path: &Path) -> Option<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied within
    // its bounds (leaving the terminating NUL).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return None;
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain socket(2); the fd is owned by the UnixStream below or
    // closed here.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a valid fd and address of the size passed.
    let rc = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        // SAFETY: closing the fd we opened.
        unsafe { libc::close(fd) };
        return None;
    }
    // SAFETY: a connected socket fd we own.
    Some(unsafe { UnixStream::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;

    fn limits() -> QmpLimits {
        QmpLimits {
            connect: Duration::from_millis(300),
            greeting: Duration::from_millis(300),
            reply: Duration::from_millis(300),
            heartbeat: Duration::from_millis(50),
        }
    }

    /// Polls until an error or `for_` passes.
    fn poll_for(w: &mut QmpWatch, for_: Duration) -> Result<(), StepTimeout> {
        let end = Instant::now() + for_;
        while Instant::now() < end {
            w.poll()?;
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    #[test]
    fn no_socket_is_a_connect_timeout() {
        let d = tempfile::tempdir().unwrap();
        let mut w = QmpWatch::new(&d.path().join("q"), limits());
        let e = poll_for(&mut w, Duration::from_secs(2)).unwrap_err();
        assert_eq!(e.step, Step::Connect);
        assert!(e.to_string().contains("QMP connect limit"), "{e}");
    }

    #[test]
    fn a_full_backlog_does_not_block() {
        // A listener that never accepts (a QEMU frozen after opening its
        // socket): the first connection queues, further ones would block
        // std's connect forever.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q");
        let _l = UnixListener::bind(&p).unwrap();
        let started = Instant::now();
        let mut fillers = Vec::new();
        while let Some(s) = connect_nonblocking(&p) {
            fillers.push(s);
            assert!(fillers.len() < 10_000, "backlog never filled");
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        let mut w = QmpWatch::new(&p, limits());
        let e = poll_for(&mut w, Duration::from_secs(2)).unwrap_err();
        assert_eq!(e.step, Step::Connect);
    }

    #[test]
    fn no_greeting_is_a_greeting_timeout() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q");
        let _l = UnixListener::bind(&p).unwrap();
        let mut w = QmpWatch::new(&p, limits());
        let e = poll_for(&mut w, Duration::from_secs(2)).unwrap_err();
        assert_eq!(e.step, Step::Greeting);
        assert!(e.to_string().contains("no greeting"), "{e}");
    }

    /// A fake QEMU on `p`: greets, answers `answers` commands, then stops
    /// answering (a QEMU frozen mid-run); reports SHUTDOWN on `quit`.
    fn fake_qemu(p: &Path, answers: usize) -> std::thread::JoinHandle<()> {
        let l = UnixListener::bind(p).unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .unwrap();
            let mut r = std::io::BufReader::new(s);
            let mut n = 0;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if n < answers {
                    if line.contains("quit") {
                        let _ = w.write_all(b"{\"return\": {}}\n{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\n");
                    } else {
                        let _ = w.write_all(b"{\"return\": {}}\n");
                    }
                }
                n += 1;
                line.clear();
            }
        })
    }

    #[test]
    fn silence_mid_run_is_a_reply_timeout() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q");
        let _t = fake_qemu(&p, 3);
        let mut w = QmpWatch::new(&p, limits());
        let e = poll_for(&mut w, Duration::from_secs(3)).unwrap_err();
        assert_eq!(e.step, Step::Reply("query-status"));
        assert!(e.to_string().contains("stopped answering"), "{e}");
    }

    #[test]
    fn a_live_qemu_keeps_answering_and_reports_its_shutdown() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q");
        let _t = fake_qemu(&p, usize::MAX);
        let mut w = QmpWatch::new(&p, limits());
        poll_for(&mut w, Duration::from_millis(600)).unwrap();
        assert!(w.answering());
        assert!(w.quit());
        poll_for(&mut w, Duration::from_millis(200)).unwrap();
        assert_eq!(w.shutdown_reason(), Some("host_qmp_quit"));
    }
}
