//! How the administrative password may travel: only with SCRAM, unless TLS has verified
//! the server.
//!
//! `tokio-postgres` answers whatever authentication the server asks for, including
//! `password` (the password in clear text) and `md5` (a hash that is as good as the
//! password for logging in, and crackable). Where the server is not authenticated (TLS
//! mode `disable`, or `require`, which checks no certificate), whoever answers at the
//! address (or sits in the path) could ask for either and receive the administrative
//! password. [`AuthGuard`] reads the server's messages on their way to the client during
//! the start-up, and fails the connection with [`InsecureAuthRequest`] as soon as such a
//! request arrives, before the client has seen it, so the password is never sent. It
//! stops looking once authentication is over.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The server asked for the password in a form that reveals it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsecureAuthRequest {
    /// `cleartext password` or `MD5`.
    pub method: &'static str,
}

impl fmt::Display for InsecureAuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server asked for the password with {}, which Landlord does not send without a verified server",
            self.method
        )
    }
}

impl std::error::Error for InsecureAuthRequest {}

/// Where the reader is in the server's message stream.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Reading a message header: its tag and length (5 bytes).
    Header { tag: u8, len: [u8; 4], got: usize },
    /// Reading the first 4 bytes of an `Authentication` message body: its code.
    AuthCode {
        code: [u8; 4],
        got: usize,
        rest: usize,
    },
    /// Skipping the rest of a message body.
    Skip { rest: usize },
    /// Authentication is over (or failed): nothing more to look at.
    Done,
}

/// Follows the server's messages during start-up and refuses password requests in clear
/// text or MD5.
#[derive(Clone, Debug)]
pub struct AuthInspector {
    state: State,
}

impl State {
    /// At the start of a message.
    const HEADER: State = State::Header {
        tag: 0,
        len: [0; 4],
        got: 0,
    };
}

impl Default for AuthInspector {
    fn default() -> Self {
        AuthInspector {
            state: State::HEADER,
        }
    }
}

impl AuthInspector {
    /// Looks at the next bytes the server sent.
    pub fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), InsecureAuthRequest> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Done => return Ok(()),
                State::Header { tag, len, got } => {
                    if *got == 0 {
                        *tag = bytes[0];
                    } else {
                        len[*got - 1] = bytes[0];
                    }
                    *got += 1;
                    bytes = &bytes[1..];
                    if *got == 5 {
                        let body = (u32::from_be_bytes(*len) as usize).saturating_sub(4);
                        self.state = match *tag {
                            b'R' if body >= 4 => State::AuthCode {
                                code: [0; 4],
                                got: 0,
                                rest: body - 4,
                            },
                            // An error ends the start-up.
                            b'E' => State::Done,
                            // Anything else (a notice, say) is skipped: only
                            // AuthenticationOk or an error ends the watch, so that no
                            // message can make the guard stop looking early.
                            _ => State::Skip { rest: body },
                        };
                        if let State::Skip { rest: 0 } = self.state {
                            self.state = State::HEADER;
                        }
                    }
                }
                State::AuthCode { code, got, rest } => {
                    code[*got] = bytes[0];
                    *got += 1;
                    bytes = &bytes[1..];
                    if *got == 4 {
                        let rest = *rest;
                        match u32::from_be_bytes(*code) {
                            3 => {
                                return Err(InsecureAuthRequest {
                                    method: "cleartext password",
                                });
                            }
                            5 => return Err(InsecureAuthRequest { method: "MD5" }),
                            // AuthenticationOk: done once its (empty) body is read.
                            0 => self.state = State::Done,
                            _ if rest == 0 => self.state = State::HEADER,
                            _ => self.state = State::Skip { rest },
                        }
                    }
                }
                State::Skip { rest } => {
                    let n = (*rest).min(bytes.len());
                    *rest -= n;
                    bytes = &bytes[n..];
                    if *rest == 0 {
                        self.state = State::HEADER;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A stream whose reads pass through an [`AuthInspector`].
pub struct AuthGuard<S> {
    inner: S,
    inspector: Option<AuthInspector>,
}

impl<S> AuthGuard<S> {
    /// Guards `inner` when `refuse` is true; passes everything through otherwise.
    pub fn new(inner: S, refuse: bool) -> Self {
        AuthGuard {
            inner,
            inspector: refuse.then(AuthInspector::default),
        }
    }

    /// The guarded stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Some(inspector) = &mut this.inspector
                    && let Err(refused) = inspector.inspect(&buf.filled()[before..])
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        refused,
                    )));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    #[test]
    fn cleartext_and_md5_requests_are_refused_even_split_into_single_bytes() {
        for (code, extra, method) in [
            (3, &b""[..], "cleartext password"),
            (5, &b"salt"[..], "MD5"),
        ] {
            let message = auth(code, extra);
            let mut whole = AuthInspector::default();
            assert_eq!(whole.inspect(&message), Err(InsecureAuthRequest { method }));
            let mut split = AuthInspector::default();
            let refused = message
                .iter()
                .map(|b| split.inspect(&[*b]))
                .find(Result::is_err);
            assert_eq!(refused, Some(Err(InsecureAuthRequest { method })));
        }
    }

    #[test]
    fn scram_passes_and_nothing_is_looked_at_after_authentication() {
        let mut inspector = AuthInspector::default();
        let mut stream = auth(10, b"SCRAM-SHA-256\0\0");
        stream.extend(auth(11, b"r=abc,s=def,i=4096"));
        stream.extend(auth(12, b"v=xyz"));
        stream.extend(auth(0, b""));
        // After AuthenticationOk, bytes that would look like a request are data.
        stream.extend(auth(3, b""));
        assert_eq!(inspector.inspect(&stream), Ok(()));
        // A notice first does not blind the guard.
        let mut noticed = AuthInspector::default();
        let mut bytes = vec![b'N', 0, 0, 0, 6, b'x', 0];
        bytes.extend(auth(5, b"salt"));
        assert!(noticed.inspect(&bytes).is_err());
        // An error response ends the start-up.
        let mut error = AuthInspector::default();
        let mut bytes = vec![b'E', 0, 0, 0, 5, 0];
        bytes.extend(auth(3, b""));
        assert_eq!(error.inspect(&bytes), Ok(()));
    }
}
