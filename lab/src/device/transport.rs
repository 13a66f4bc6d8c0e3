//! The one transport for every remote command: SSH over the wired link.
//!
//! One session per run, reused for every command (exec → stdout, stderr,
//! exit status, with a timeout), plus long-running streamed commands
//! (`dmesg -w`, `cat trace_pipe`) on channels of the same connection, and
//! [`Transport::reconnect`]. The host key is checked against a known_hosts
//! file: a mismatch is refused; an unknown key is refused unless the device
//! is configured for trust-on-first-use, which then records it.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ssh2::{CheckResult, HostKeyType, KnownHostFileKind, Session};

use crate::device::inventory::{Auth, HostKeyPolicy, SshEndpoint};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach {addr}: {msg}")]
    Connect { addr: String, msg: String },
    #[error(
        "HOST KEY MISMATCH for {host}: the device presented {key_type} {fingerprint}, \
         which differs from the key recorded in {known_hosts}. Refusing to connect. If the \
         device was reinstalled, remove its old line from that file."
    )]
    HostKeyMismatch {
        host: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error(
        "unknown host key for {host} ({key_type} {fingerprint}): not in {known_hosts}. \
         Refusing to connect; to trust it on first use pass --trust-new-host-key \
         (or set `known_hosts_policy: trust-on-first-use` for the device)"
    )]
    HostKeyUnknown {
        host: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error("authentication as {user} on {host} failed: {msg}")]
    Auth {
        user: String,
        host: String,
        msg: String,
    },
    #[error("command timed out after {timeout_s:.1} s on {host}: {cmd}")]
    Timeout {
        host: String,
        cmd: String,
        timeout_s: f64,
    },
    #[error("ssh error on {host}: {msg}")]
    Ssh { host: String, msg: String },
}

pub type TResult<T> = std::result::Result<T, TransportError>;

/// The result of one remote command.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: i32,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Timeout of the TCP connect and SSH handshake of one attempt. A rebooting
/// guest behind a forwarded port accepts and then hangs, so keep it short.
pub const HANDSHAKE_TIMEOUT_S: u64 = 5;

pub struct Transport {
    ep: SshEndpoint,
    sess: Session,
    /// Commands run on this session (for the overhead benchmark and tests).
    pub commands_run: u64,
}

/// A long-running command on its own channel of the transport's session.
pub struct Stream {
    chan: ssh2::Channel,
    pub cmd: String,
    pub eof: bool,
}

impl Transport {
    pub fn connect(ep: &SshEndpoint) -> TResult<Transport> {
        Self::connect_with_timeout(ep, Duration::from_secs(HANDSHAKE_TIMEOUT_S))
    }

    pub fn connect_with_timeout(ep: &SshEndpoint, timeout: Duration) -> TResult<Transport> {
        let addr_s = format!("{}:{}", ep.host, ep.port);
        let cerr = |msg: String| TransportError::Connect {
            addr: addr_s.clone(),
            msg,
        };
        let addr = addr_s
            .to_socket_addrs()
            .map_err(|e| cerr(format!("resolving: {e}")))?
            .next()
            .ok_or_else(|| cerr("no address".into()))?;
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| cerr(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut sess = Session::new().map_err(|e| cerr(e.to_string()))?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(timeout.as_millis() as u32);
        sess.handshake()
            .map_err(|e| cerr(format!("ssh handshake: {e}")))?;
        check_host_key(ep, &sess)?;
        let auth_err = |msg: String| TransportError::Auth {
            user: ep.user.clone(),
            host: ep.host.clone(),
            msg,
        };
        match &ep.auth {
            Auth::Key(k) => sess
                .userauth_pubkey_file(&ep.user, None, k, None)
                .map_err(|e| auth_err(format!("key {}: {e}", k.display())))?,
            Auth::Agent => sess
                .userauth_agent(&ep.user)
                .map_err(|e| auth_err(format!("agent: {e}")))?,
        }
        if !sess.authenticated() {
            return Err(auth_err("not authenticated".into()));
        }
        sess.set_timeout(0);
        sess.set_keepalive(true, 10);
        Ok(Transport {
            ep: ep.clone(),
            sess,
            commands_run: 0,
        })
    }

    pub fn endpoint(&self) -> &SshEndpoint {
        &self.ep
    }

    /// Drops the session and opens a new one to the same endpoint.
    pub fn reconnect(&mut self) -> TResult<()> {
        *self = Transport::connect(&self.ep)?;
        Ok(())
    }

    fn ssh_err(&self, e: impl std::fmt::Display) -> TransportError {
        TransportError::Ssh {
            host: self.ep.host.clone(),
            msg: e.to_string(),
        }
    }

    /// Runs `cmd` (through the remote shell) and waits for it, at most `timeout`.
    pub fn exec(&mut self, cmd: &str, timeout: Duration) -> TResult<Output> {
        let t0 = Instant::now();
        let to = timeout_error(cmd, timeout);
        let r = (|| -> TResult<Output> {
            let mut ch = self.start_exec(cmd, t0, timeout, &to)?;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            // Read both streams until EOF without letting either window fill.
            self.sess.set_blocking(false);
            let mut buf = [0u8; 32 * 1024];
            loop {
                let mut progressed = false;
                match ch.read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        stdout.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(self.ssh_err(e)),
                }
                match ch.stderr().read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        stderr.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(self.ssh_err(e)),
                }
                if ch.eof() && !progressed {
                    break;
                }
                if t0.elapsed() > timeout {
                    return Err(to(self));
                }
                if !progressed {
                    self.wait_socket(Duration::from_millis(20));
                }
            }
            self.sess.set_blocking(true);
            let _ = ch.wait_close();
            let status = ch.exit_status().map_err(|e| self.ssh_err(e))?;
            Ok(Output {
                stdout,
                stderr,
                status,
            })
        })();
        self.sess.set_blocking(true);
        self.sess.set_timeout(0);
        r
    }

    /// Opens a channel and starts `cmd` on it (blocking, the session's
    /// timeout set to what is left of `timeout`).
    fn start_exec(
        &mut self,
        cmd: &str,
        t0: Instant,
        timeout: Duration,
        to: &dyn Fn(&Self) -> TransportError,
    ) -> TResult<ssh2::Channel> {
        self.commands_run += 1;
        self.sess.set_blocking(true);
        self.sess.set_timeout(timeout.as_millis().max(1) as u32);
        let mut ch = retry_spurious_timeout(t0, timeout, || self.sess.channel_session())
            .map_err(|e| self.map_err(e, to))?;
        retry_spurious_timeout(t0, timeout, || ch.exec(cmd)).map_err(|e| self.map_err(e, to))?;
        Ok(ch)
    }

    fn map_err(&self, e: ssh2::Error, to: &dyn Fn(&Self) -> TransportError) -> TransportError {
        if matches!(e.code(), ssh2::ErrorCode::Session(-9)) {
            to(self)
        } else {
            self.ssh_err(e)
        }
    }

    fn wait_socket(&self, max: Duration) {
        // libssh2 has no portable readiness API through ssh2; a short sleep
        // bounds latency at `max` per idle round.
        std::thread::sleep(max);
    }

    /// Runs `cmd` with `input` on its stdin (then EOF), at most `timeout`:
    /// how files reach the device (`cat > FILE`), with no scp or sftp
    /// server needed there. `cmd` must not print much before it has read
    /// its input (stdout is read after the input is sent).
    pub fn exec_with_input(
        &mut self,
        cmd: &str,
        input: &mut dyn Read,
        timeout: Duration,
    ) -> TResult<Output> {
        let t0 = Instant::now();
        let to = timeout_error(cmd, timeout);
        let r = (|| -> TResult<Output> {
            let mut ch = self.start_exec(cmd, t0, timeout, &to)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| self.ssh_err(format!("reading the input of `{cmd}`: {e}")))?;
                if n == 0 {
                    break;
                }
                if t0.elapsed() > timeout {
                    return Err(to(self));
                }
                ch.write_all(&buf[..n]).map_err(|e| {
                    if e.kind() == ErrorKind::TimedOut {
                        to(self)
                    } else {
                        self.ssh_err(e)
                    }
                })?;
            }
            ch.send_eof().map_err(|e| self.map_err(e, &to))?;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            ch.read_to_end(&mut stdout).map_err(|e| self.ssh_err(e))?;
            ch.stderr()
                .read_to_end(&mut stderr)
                .map_err(|e| self.ssh_err(e))?;
            let _ = ch.wait_close();
            let status = ch.exit_status().map_err(|e| self.ssh_err(e))?;
            Ok(Output {
                stdout,
                stderr,
                status,
            })
        })();
        self.sess.set_timeout(0);
        r
    }

    /// Runs `cmd`; a non-zero exit status is an error carrying stderr.
    pub fn exec_ok(&mut self, cmd: &str, timeout: Duration) -> TResult<String> {
        let out = self.exec(cmd, timeout)?;
        if out.status != 0 {
            return Err(self.ssh_err(format!(
                "`{cmd}` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout_str())
    }

    /// Starts a long-running command on a new channel of this session.
    pub fn stream(&mut self, cmd: &str) -> TResult<Stream> {
        self.commands_run += 1;
        self.sess.set_blocking(true);
        self.sess.set_timeout(HANDSHAKE_TIMEOUT_S as u32 * 1000);
        let (t0, timeout) = (Instant::now(), Duration::from_secs(HANDSHAKE_TIMEOUT_S));
        let r = (|| {
            let mut chan = retry_spurious_timeout(t0, timeout, || self.sess.channel_session())
                .map_err(|e| self.ssh_err(e))?;
            retry_spurious_timeout(t0, timeout, || {
                chan.handle_extended_data(ssh2::ExtendedData::Merge)
            })
            .map_err(|e| self.ssh_err(e))?;
            retry_spurious_timeout(t0, timeout, || chan.exec(cmd)).map_err(|e| self.ssh_err(e))?;
            Ok(Stream {
                chan,
                cmd: cmd.to_string(),
                eof: false,
            })
        })();
        self.sess.set_timeout(0);
        r
    }

    /// Appends whatever the stream has produced so far to `out` (stdout and
    /// stderr merged) without blocking. Returns the number of bytes added.
    pub fn poll_stream(&mut self, s: &mut Stream, out: &mut Vec<u8>) -> TResult<usize> {
        self.sess.set_blocking(false);
        let mut n_total = 0;
        let mut buf = [0u8; 32 * 1024];
        let r = loop {
            match s.chan.read(&mut buf) {
                Ok(0) => {
                    if s.chan.eof() {
                        s.eof = true;
                    }
                    break Ok(n_total);
                }
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    n_total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(n_total),
                Err(e) => break Err(self.ssh_err(e)),
            }
        };
        self.sess.set_blocking(true);
        r
    }

    /// Closes a stream's channel (the remote command gets SIGPIPE/EOF).
    pub fn close_stream(&mut self, mut s: Stream) {
        self.sess.set_blocking(true);
        self.sess.set_timeout(2000);
        let _ = s.chan.send_eof();
        let _ = s.chan.close();
        self.sess.set_timeout(0);
    }

    /// Writes `data` to a stream's stdin.
    pub fn write_stream(&mut self, s: &mut Stream, data: &[u8]) -> TResult<()> {
        self.sess.set_blocking(true);
        s.chan.write_all(data).map_err(|e| self.ssh_err(e))
    }
}

/// libssh2 in blocking mode with keepalive on returns LIBSSH2_ERROR_TIMEOUT
/// (-9) whenever the next keepalive falls due before the server answers, long
/// before the session timeout: on a busy device, a channel open or exec then
/// "times out" within a second. The call's state is kept across that return,
/// so it is retried until our own deadline.
fn retry_spurious_timeout<T>(
    t0: Instant,
    timeout: Duration,
    mut f: impl FnMut() -> Result<T, ssh2::Error>,
) -> Result<T, ssh2::Error> {
    loop {
        match f() {
            Err(e)
                if matches!(e.code(), ssh2::ErrorCode::Session(-9)) && t0.elapsed() < timeout =>
            {
                continue
            }
            r => return r,
        }
    }
}

fn key_type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

/// `host` as known_hosts writes it: bare for port 22, `[host]:port` otherwise.
pub fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn check_host_key(ep: &SshEndpoint, sess: &Session) -> TResult<()> {
    let (key, kt) = sess.host_key().ok_or_else(|| TransportError::Ssh {
        host: ep.host.clone(),
        msg: "no host key".into(),
    })?;
    let key_type = key_type_name(kt).to_string();
    let fingerprint = sess
        .host_key_hash(ssh2::HashType::Sha256)
        .map(|h| format!("SHA256:{}", base64(h).trim_end_matches('=')))
        .unwrap_or_default();
    let mut kh = sess.known_hosts().map_err(|e| TransportError::Ssh {
        host: ep.host.clone(),
        msg: e.to_string(),
    })?;
    if ep.known_hosts.exists() {
        kh.read_file(&ep.known_hosts, KnownHostFileKind::OpenSSH)
            .map_err(|e| TransportError::Ssh {
                host: ep.host.clone(),
                msg: format!("reading {}: {e}", ep.known_hosts.display()),
            })?;
    }
    // Aliases resolve to a host name; check that name as OpenSSH would.
    let host = ep.known_hosts_host.as_deref().unwrap_or(&ep.host);
    match kh.check_port(host, ep.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(TransportError::HostKeyMismatch {
            host: known_hosts_name(host, ep.port),
            key_type,
            fingerprint,
            known_hosts: ep.known_hosts.clone(),
        }),
        CheckResult::NotFound | CheckResult::Failure => match ep.host_key_policy {
            HostKeyPolicy::Strict => Err(TransportError::HostKeyUnknown {
                host: known_hosts_name(host, ep.port),
                key_type,
                fingerprint,
                known_hosts: ep.known_hosts.clone(),
            }),
            HostKeyPolicy::TrustOnFirstUse => {
                let line = format!(
                    "{} {} {}\n",
                    known_hosts_name(host, ep.port),
                    key_type,
                    base64(key)
                );
                append_line(&ep.known_hosts, &line).map_err(|e| TransportError::Ssh {
                    host: ep.host.clone(),
                    msg: format!(
                        "recording the host key in {}: {e}",
                        ep.known_hosts.display()
                    ),
                })?;
                crate::progress::note(format!(
                    "trusting on first use: recorded {} {key_type} {fingerprint} in {}",
                    known_hosts_name(host, ep.port),
                    ep.known_hosts.display()
                ));
                Ok(())
            }
        },
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line.as_bytes())
}

/// Standard base64 with padding (known_hosts and fingerprints).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn known_hosts_names() {
        assert_eq!(known_hosts_name("ohm-wired.lan", 22), "ohm-wired.lan");
        assert_eq!(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }
}

/// The [`TransportError::Timeout`] of `cmd`, made when it happens.
fn timeout_error(cmd: &str, timeout: Duration) -> impl Fn(&Transport) -> TransportError + '_ {
    move |this| TransportError::Timeout {
        host: this.ep.host.clone(),
        cmd: cmd.to_string(),
        timeout_s: timeout.as_secs_f64(),
    }
}
