//! RESP on the wire: requests parsed incrementally within Redis's limits,
//! and replies encoded for RESP2 or RESP3.

use std::io::{self, BufRead, BufReader, Read};

use bytes::Bytes;
use tidings::Message;

/// The longest bulk string accepted, as Redis's default `proto-max-bulk-len`.
const MAX_BULK: i64 = 512 * 1024 * 1024;
/// The most arguments one request may have.
const MAX_ARGS: i64 = 1024 * 1024;
/// The most argument bytes one request may declare in total.
const MAX_REQUEST_BYTES: u64 = 1024 * 1024 * 1024;
/// The longest inline request or header line (Redis's `PROTO_INLINE_MAX_SIZE`).
const MAX_LINE: u64 = 64 * 1024;

/// One request: the command name and its arguments.
pub(crate) type Args = Vec<Vec<u8>>;

/// Why reading a request stopped.
pub(crate) enum ReadError {
    /// The socket failed or ended mid-request: nothing to reply.
    Io,
    /// A malformed or oversized request: the error text to reply with.
    Protocol(Vec<u8>),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

/// A `Protocol error: …` as Redis words it.
fn protocol(message: &str) -> ReadError {
    ReadError::Protocol(format!("Protocol error: {message}").into_bytes())
}

/// Parses requests from a buffered socket, allocating only what arrives.
pub(crate) struct RequestReader<R> {
    r: BufReader<R>,
    line: Vec<u8>,
    /// Buffers of requests that have run, reused for the next ones so that
    /// a steady pipeline allocates nothing.
    spare_args: Vec<Args>,
    spare_bytes: Vec<Vec<u8>>,
}

impl<R: Read> RequestReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        RequestReader {
            // Redis reads 16 KiB at a time too (`PROTO_IOBUF_LEN`).
            r: BufReader::with_capacity(16 * 1024, inner),
            line: Vec::new(),
            spare_args: Vec::new(),
            spare_bytes: Vec::new(),
        }
    }

    /// Takes back requests that have run, keeping a few small buffers (at
    /// most about 300 KiB) for reuse.
    pub(crate) fn recycle(&mut self, requests: &mut Vec<Args>) {
        for mut args in requests.drain(..) {
            for arg in args.drain(..) {
                if arg.capacity() <= 1024 && self.spare_bytes.len() < 256 {
                    self.spare_bytes.push(arg);
                }
            }
            if args.capacity() <= 64 && self.spare_args.len() < 64 {
                self.spare_args.push(args);
            }
        }
    }

    /// The source of bytes.
    pub(crate) fn inner_mut(&mut self) -> &mut R {
        self.r.get_mut()
    }

    /// Reads the next request; `Ok(None)` at a clean end of input. Empty
    /// requests (a blank inline line, `*0`, `*-1`) are skipped, as Redis does.
    pub(crate) fn read(&mut self) -> Result<Option<Args>, ReadError> {
        loop {
            let first = match self.r.fill_buf()? {
                [] => return Ok(None),
                [b, ..] => *b,
            };
            let args = if first == b'*' {
                self.multibulk()?
            } else {
                self.inline()?
            };
            if !args.is_empty() {
                return Ok(Some(args));
            }
        }
    }

    /// Reads one line into `self.line`, without its `\n` and an optional
    /// `\r`. `Ok(false)` if no newline came within [`MAX_LINE`] bytes.
    fn read_line(&mut self) -> Result<bool, ReadError> {
        self.line.clear();
        (&mut self.r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)?;
        match self.line.last() {
            Some(b'\n') => {}
            _ if self.line.len() as u64 >= MAX_LINE => return Ok(false),
            _ => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        }
        self.line.pop();
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(true)
    }

    fn inline(&mut self) -> Result<Args, ReadError> {
        if !self.read_line()? {
            return Err(protocol("too big inline request"));
        }
        split_args(&self.line).ok_or_else(|| protocol("unbalanced quotes in request"))
    }

    fn multibulk(&mut self) -> Result<Args, ReadError> {
        if !self.read_line()? {
            return Err(protocol("too big mbulk count string"));
        }
        let count = match parse_int(&self.line[1..]) {
            // `*0` and the null array `*-1` are empty requests.
            Some(-1 | 0) => return Ok(Args::new()),
            Some(n) if (1..=MAX_ARGS).contains(&n) => n as usize,
            _ => return Err(protocol("invalid multibulk length")),
        };
        // Never trust the count for more than a small first allocation.
        let mut args = self.spare_args.pop().unwrap_or_default();
        args.reserve(count.min(1024));
        let mut total = 0u64;
        for _ in 0..count {
            if !self.read_line()? {
                return Err(protocol("too big bulk count string"));
            }
            match self.line.first() {
                Some(b'$') => {}
                // Redis shows the byte as it is (a CR for an empty line).
                found => {
                    let found = found.copied().unwrap_or(b'\r');
                    let message = [&b"Protocol error: expected '$', got '"[..], &[found], b"'"];
                    return Err(ReadError::Protocol(message.concat()));
                }
            }
            let len = match parse_int(&self.line[1..]) {
                Some(n) if (0..=MAX_BULK).contains(&n) => n as u64,
                _ => return Err(protocol("invalid bulk length")),
            };
            total += len;
            if total > MAX_REQUEST_BYTES {
                return Err(protocol("invalid bulk length"));
            }
            args.push(self.bulk(len as usize)?);
        }
        Ok(args)
    }

    /// Reads `len` bytes and the CRLF after them, growing the buffer only
    /// as data arrives.
    fn bulk(&mut self, len: usize) -> Result<Vec<u8>, ReadError> {
        let mut data = self.spare_bytes.pop().unwrap_or_default();
        data.clear();
        let buffered = self.r.buffer();
        if buffered.len() >= len + 2 {
            data.extend_from_slice(&buffered[..len]);
            self.r.consume(len);
        } else {
            data.reserve(len.min(64 * 1024));
            (&mut self.r).take(len as u64).read_to_end(&mut data)?;
            if data.len() < len {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
        let mut crlf = [0; 2];
        self.r.read_exact(&mut crlf)?;
        if crlf != *b"\r\n" {
            return Err(protocol("expected CRLF after bulk data"));
        }
        Ok(data)
    }
}

/// Redis's `string2ll`: an optional `-`, then digits without a leading zero
/// (except `0` itself), no sign `+`, no spaces, no overflow.
pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

/// Splits an inline request like Redis's `sdssplitargs`: whitespace
/// separates arguments; `"…"` understands `\n \r \t \b \a \xHH` and `\c`;
/// `'…'` understands `\'`. `None` for unbalanced quotes.
fn split_args(line: &[u8]) -> Option<Args> {
    // C strings: a NUL ends the line.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut args = Args::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let (mut in_double, mut in_single) = (false, false);
        let mut current = Vec::new();
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && at(p + 2).is_ascii_hexdigit()
                    && at(p + 3).is_ascii_hexdigit()
                {
                    let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                    current.push(hex(at(p + 2)) * 16 + hex(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    // A closing quote must be followed by a space or the end.
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => current.push(c),
                }
            }
            p += 1;
        }
        args.push(current);
    }
}

/// The output buffer and the connection's protocol version.
pub(crate) struct Out {
    pub(crate) buf: Vec<u8>,
    /// Whether the connection speaks RESP3 (after `HELLO 3`).
    pub(crate) resp3: bool,
}

impl Out {
    /// A type byte, a decimal count or length, and CRLF.
    fn header(&mut self, prefix: u8, n: i64) {
        self.buf.push(prefix);
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut m = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (m % 10) as u8;
            m /= 10;
            if m == 0 {
                break;
            }
        }
        if n < 0 {
            self.buf.push(b'-');
        }
        self.buf.extend_from_slice(&digits[i..]);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub(crate) fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error reply; like Redis, newlines in it become spaces.
    pub(crate) fn error(&mut self, message: impl AsRef<[u8]>) {
        self.buf.push(b'-');
        let message = message.as_ref().iter();
        self.buf
            .extend(message.map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
        self.buf.extend_from_slice(b"\r\n");
    }

    pub(crate) fn int(&mut self, n: usize) {
        self.header(b':', i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub(crate) fn nil(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    pub(crate) fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A push (RESP3) or an array (RESP2): messages and confirmations.
    pub(crate) fn push(&mut self, n: usize) {
        self.header(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    /// A map of `n` pairs (RESP3), or a flat array of `2n` items (RESP2).
    pub(crate) fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    /// A verbatim text string (RESP3), or a bulk string (RESP2).
    pub(crate) fn verbatim(&mut self, text: &str) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    pub(crate) fn message(&mut self, m: &Message<Bytes>) {
        self.push(if m.pattern().is_some() { 4 } else { 3 });
        self.bulk(m.kind().as_str().as_bytes());
        if let Some(pattern) = m.pattern() {
            self.bulk(pattern);
        }
        self.bulk(m.channel());
        self.bulk(m.payload());
    }
}
