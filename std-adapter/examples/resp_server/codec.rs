//! RESP on the wire, without blocking: requests parsed from whatever bytes
//! have arrived, and replies queued for whenever the socket takes them.
//!
//! - [`Input`] holds a connection's unparsed bytes and parses requests out
//!   of them in place: a request's arguments are ranges of its buffer
//!   ([`Args`]), so parsing copies nothing. A request that is not complete
//!   yet keeps its parse position, so bytes that arrive slowly are never
//!   parsed twice; the buffer grows only as bytes arrive, never to a size a
//!   client merely declares.
//! - [`Output`] is the bytes a connection has not taken yet: a queue of
//!   owned buffers and shared ones ([`Bytes`]), written with `writev`. A
//!   large message payload is shared by every subscriber's output instead
//!   of copied into each.
//! - [`Out`] encodes replies for RESP2 or RESP3 into an [`Output`], and
//!   drops them while `CLIENT REPLY` is off; pushes (messages and
//!   subscription confirmations) are never dropped, as in Redis.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};

use bytes::Bytes;

use super::pubsub::Payload;

/// The longest bulk string accepted, as Redis's default `proto-max-bulk-len`.
const MAX_BULK: i64 = 512 * 1024 * 1024;
/// The most arguments one request may have.
const MAX_ARGS: i64 = 1024 * 1024;
/// The most argument bytes one request may declare in total.
const MAX_REQUEST_BYTES: u64 = 1024 * 1024 * 1024;
/// The longest inline request or header line, without its line ending
/// (Redis's `PROTO_INLINE_MAX_SIZE`).
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// A connection's input buffer to begin with, and what it shrinks back to:
/// Redis reads 16 KiB at a time too (`PROTO_IOBUF_LEN`).
const INPUT_CHUNK: usize = 16 * 1024;
/// A read is attempted only with at least this much room.
const MIN_READ: usize = 4 * 1024;

/// One request: the command name and its arguments, as ranges of a buffer.
#[derive(Clone, Copy)]
pub(crate) struct Args<'a> {
    data: &'a [u8],
    ranges: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    pub(crate) fn new(data: &'a [u8], ranges: &'a [(usize, usize)]) -> Self {
        Args { data, ranges }
    }

    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Argument `i`, if there is one.
    pub(crate) fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.ranges.get(i).map(|&(a, b)| &self.data[a..b])
    }

    /// The arguments from `i` on.
    pub(crate) fn from(&self, i: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let data = self.data;
        self.ranges
            .get(i..)
            .unwrap_or(&[])
            .iter()
            .map(move |&(a, b)| &data[a..b])
    }

    /// The argument bytes in total.
    pub(crate) fn bytes(&self) -> usize {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }
}

impl std::ops::Index<usize> for Args<'_> {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        let (a, b) = self.ranges[i];
        &self.data[a..b]
    }
}

/// A request kept for later (a command queued by MULTI).
pub(crate) struct OwnedArgs {
    data: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

impl OwnedArgs {
    pub(crate) fn new(args: &Args<'_>) -> OwnedArgs {
        let mut data = Vec::with_capacity(args.bytes());
        let mut ranges = Vec::with_capacity(args.len());
        for arg in args.from(0) {
            ranges.push((data.len(), data.len() + arg.len()));
            data.extend_from_slice(arg);
        }
        OwnedArgs { data, ranges }
    }

    pub(crate) fn args(&self) -> Args<'_> {
        Args::new(&self.data, &self.ranges)
    }

    /// The memory it holds, roughly.
    pub(crate) fn size(&self) -> usize {
        self.data.capacity() + self.ranges.capacity() * 16
    }
}

/// A multibulk request whose bytes have not all arrived.
struct Partial {
    /// Arguments still to come.
    left: usize,
    /// Offset from the request's start of the next byte to parse.
    pos: usize,
    /// Argument bytes declared so far.
    total: u64,
    /// The declared length of the bulk string whose header was parsed and
    /// whose data starts at `pos`.
    bulk: Option<usize>,
}

/// Why a request was refused: Redis's `Protocol error: …` text.
pub(crate) type ProtocolError = Vec<u8>;

fn protocol(message: &str) -> ProtocolError {
    format!("Protocol error: {message}").into_bytes()
}

/// Finds the line starting at `from`: `Ok(Some((content_end, next)))`,
/// `Ok(None)` if its end has not arrived, `Err(())` once it is longer than
/// [`MAX_LINE`] (without its `\r\n` or `\n`).
fn find_line(data: &[u8], from: usize) -> Result<Option<(usize, usize)>, ()> {
    let rest = &data[from..];
    let window = &rest[..rest.len().min(MAX_LINE + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let content = if i > 0 && rest[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            if content > MAX_LINE {
                Err(())
            } else {
                Ok(Some((from + content, from + i + 1)))
            }
        }
        None if rest.len() > MAX_LINE + 1 => Err(()),
        None if rest.len() == MAX_LINE + 1 && rest[MAX_LINE] != b'\r' => Err(()),
        None => Ok(None),
    }
}

/// Parses the common shape of a header line at `pos` (a type byte, 1 to
/// 18 digits without a leading zero, CRLF) into its number and the offset
/// after it; `None` for any other shape, which the general path then
/// parses, waits for, or refuses.
#[inline]
fn quick_number(data: &[u8], pos: usize) -> Option<(usize, usize)> {
    let digits = data.get(pos + 1..)?;
    let mut n = 0usize;
    let mut i = 0;
    while i < digits.len() && i < 18 && digits[i].is_ascii_digit() {
        n = n * 10 + usize::from(digits[i] - b'0');
        i += 1;
    }
    if i == 0 || (digits[0] == b'0' && i > 1) || digits.get(i..i + 2)? != b"\r\n" {
        return None;
    }
    Some((n, pos + 1 + i + 2))
}

/// A connection's input: the bytes received and not yet parsed, and the
/// state of the request being parsed.
#[derive(Default)]
pub(crate) struct Input {
    /// Storage, all initialized; the unconsumed bytes are `start..end`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the request last returned by [`next`](Self::next), consumed
    /// at the next call.
    taken: usize,
    partial: Option<Partial>,
    /// The arguments of the request being parsed or last returned, as
    /// ranges from `start` (multibulk) or of `inline` (inline requests).
    ranges: Vec<(usize, usize)>,
    /// An inline request's arguments, unescaped.
    inline: Vec<u8>,
    /// The bytes from `start` that the bulk string being received needs
    /// to be complete; 0 when not waiting for one.
    want: usize,
}

impl Input {
    /// Bytes received and not yet consumed.
    pub(crate) fn buffered(&self) -> usize {
        self.end - self.start - self.taken
    }

    /// The buffer's size.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is buffered: no request is partly received.
    pub(crate) fn is_empty(&self) -> bool {
        self.start + self.taken == self.end
    }

    /// Reads into `shared`, the loop's read buffer, instead of a buffer of
    /// its own: called while nothing is buffered, so that a connection
    /// between requests holds no input memory. [`give_back`](Self::give_back)
    /// must follow.
    pub(crate) fn borrow(&mut self, shared: &mut Vec<u8>) {
        debug_assert!(self.is_empty() && self.partial.is_none());
        self.start += std::mem::take(&mut self.taken);
        (self.start, self.end) = (0, 0);
        std::mem::swap(&mut self.buf, shared);
    }

    /// Returns the loop's read buffer after [`borrow`](Self::borrow),
    /// keeping in a buffer of its own the bytes of a request not yet
    /// complete.
    pub(crate) fn give_back(&mut self, shared: &mut Vec<u8>) {
        self.start += std::mem::take(&mut self.taken);
        let rest = self.end - self.start;
        let mut own = if rest == 0 {
            Vec::new()
        } else {
            let mut own = vec![0; rest.max(INPUT_CHUNK)];
            own[..rest].copy_from_slice(&self.buf[self.start..self.end]);
            own
        };
        std::mem::swap(&mut self.buf, &mut own);
        *shared = own;
        (self.start, self.end) = (0, rest);
        self.trim();
    }

    /// Lets go of the memory a large request needed.
    fn trim(&mut self) {
        if self.ranges.capacity() > 1024 && self.partial.is_none() {
            self.ranges = Vec::new();
        }
        if self.inline.capacity() > 4096 {
            self.inline = Vec::new();
        }
    }

    /// Reads once from `r` into the free end of the buffer, making room
    /// first: `Ok((n, filled))`, where `filled` says the read took all the
    /// room it had, so more may be waiting.
    pub(crate) fn read_from(&mut self, r: &mut impl Read) -> io::Result<(usize, bool)> {
        self.start += std::mem::take(&mut self.taken);
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.len() - self.end < MIN_READ {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            // Full of one incomplete request: grow with what has arrived,
            // and never past what the request still needs (a bulk string
            // of 512 MiB takes 512 MiB, not the next power of two).
            if self.buf.len() - self.end < MIN_READ {
                let doubled = (self.buf.len() * 2).max(INPUT_CHUNK);
                let len = match self.want {
                    want if want > self.buf.len() => doubled.min(want + MIN_READ),
                    _ => doubled,
                };
                self.buf.resize(len, 0);
            }
        }
        let room = self.buf.len() - self.end;
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok((n, n == room))
    }

    /// The next complete request, `Ok(None)` if none has fully arrived, or
    /// the protocol error that ends the connection. Empty requests (a blank
    /// inline line, `*0`, `*-1`) are skipped, as Redis does.
    pub(crate) fn next(&mut self) -> Result<Option<Args<'_>>, ProtocolError> {
        self.start += std::mem::take(&mut self.taken);
        loop {
            let data = &self.buf[self.start..self.end];
            let partial = match &mut self.partial {
                Some(partial) => partial,
                None => match data.first() {
                    None => return Ok(None),
                    Some(b'*') => {
                        let (count, next) = match quick_number(data, 0) {
                            Some((n, next)) => (i64::try_from(n).unwrap_or(i64::MAX), next),
                            None => {
                                let Some((line_end, next)) = find_line(data, 0)
                                    .map_err(|()| protocol("too big mbulk count string"))?
                                else {
                                    return Ok(None);
                                };
                                let count = parse_int(&data[1..line_end])
                                    .ok_or_else(|| protocol("invalid multibulk length"))?;
                                (count, next)
                            }
                        };
                        let count = match count {
                            // `*0` and the null array `*-1` are empty requests.
                            -1 | 0 => {
                                self.start += next;
                                continue;
                            }
                            n if (1..=MAX_ARGS).contains(&n) => n as usize,
                            _ => return Err(protocol("invalid multibulk length")),
                        };
                        self.ranges.clear();
                        // Never trust the count for more than a small first
                        // allocation.
                        self.ranges.reserve(count.min(1024));
                        self.partial.insert(Partial {
                            left: count,
                            pos: next,
                            total: 0,
                            bulk: None,
                        })
                    }
                    Some(_) => {
                        let Some((line_end, next)) =
                            find_line(data, 0).map_err(|()| protocol("too big inline request"))?
                        else {
                            return Ok(None);
                        };
                        self.ranges.clear();
                        self.inline.clear();
                        if !split_args(&data[..line_end], &mut self.inline, &mut self.ranges) {
                            return Err(protocol("unbalanced quotes in request"));
                        }
                        if self.ranges.is_empty() {
                            self.start += next;
                            continue;
                        }
                        self.taken = next;
                        return Ok(Some(Args::new(&self.inline, &self.ranges)));
                    }
                },
            };
            while partial.left > 0 {
                let len = match partial.bulk {
                    Some(len) => len,
                    None => {
                        let quick = match data.get(partial.pos) {
                            Some(b'$') => quick_number(data, partial.pos),
                            _ => None,
                        };
                        let (len, next) = match quick {
                            Some((n, next)) => (i64::try_from(n).unwrap_or(i64::MAX), next),
                            None => {
                                let Some((line_end, next)) = find_line(data, partial.pos)
                                    .map_err(|()| protocol("too big bulk count string"))?
                                else {
                                    return Ok(None);
                                };
                                let line = &data[partial.pos..line_end];
                                match line.first() {
                                    Some(b'$') => {}
                                    // Redis shows the byte as it is (a CR
                                    // for an empty line).
                                    found => {
                                        let found = found.copied().unwrap_or(b'\r');
                                        let message = [
                                            &b"Protocol error: expected '$', got '"[..],
                                            &[found],
                                            b"'",
                                        ];
                                        return Err(message.concat());
                                    }
                                }
                                let len = parse_int(&line[1..])
                                    .ok_or_else(|| protocol("invalid bulk length"))?;
                                (len, next)
                            }
                        };
                        let len = match len {
                            n if (0..=MAX_BULK).contains(&n) => n as usize,
                            _ => return Err(protocol("invalid bulk length")),
                        };
                        partial.total += len as u64;
                        if partial.total > MAX_REQUEST_BYTES {
                            return Err(protocol("invalid bulk length"));
                        }
                        partial.pos = next;
                        partial.bulk = Some(len);
                        len
                    }
                };
                let end = partial.pos + len;
                if data.len() < end + 2 {
                    self.want = end + 2;
                    return Ok(None);
                }
                if data[end..end + 2] != *b"\r\n" {
                    return Err(protocol("expected CRLF after bulk data"));
                }
                self.ranges.push((partial.pos, end));
                partial.pos = end + 2;
                partial.bulk = None;
                partial.left -= 1;
            }
            self.taken = partial.pos;
            self.partial = None;
            self.want = 0;
            return Ok(Some(Args::new(data, &self.ranges)));
        }
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

/// Splits an inline request like Redis's `sdssplitargs` into `out`, one
/// range per argument: whitespace separates arguments; `"…"` understands
/// `\n \r \t \b \a \xHH` and `\c`; `'…'` understands `\'`. `false` for
/// unbalanced quotes.
fn split_args(line: &[u8], out: &mut Vec<u8>, ranges: &mut Vec<(usize, usize)>) -> bool {
    // C strings: a NUL ends the line.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p >= line.len() {
            return true;
        }
        let (mut in_double, mut in_single) = (false, false);
        let first = out.len();
        loop {
            let c = at(p);
            if in_double {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && at(p + 2).is_ascii_hexdigit()
                    && at(p + 3).is_ascii_hexdigit()
                {
                    let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                    out.push(hex(at(p + 2)) * 16 + hex(at(p + 3)));
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    out.push(match at(p) {
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
                        return false;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return false;
                } else {
                    out.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    out.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return false;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return false;
                } else {
                    out.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => out.push(c),
                }
            }
            p += 1;
        }
        ranges.push((first, out.len()));
    }
}

/// A piece of pending output.
enum Seg {
    Own(Vec<u8>),
    Shared(Bytes),
}

impl Seg {
    fn bytes(&self) -> &[u8] {
        match self {
            Seg::Own(v) => v,
            Seg::Shared(b) => b,
        }
    }
}

/// A connection's pending output: what it has not taken yet, in order.
#[derive(Default)]
pub(crate) struct Output {
    /// Older pieces, before `tail`.
    queue: VecDeque<Seg>,
    /// The bytes of every piece in `queue`.
    queued: usize,
    /// The newest bytes, appended to in place.
    pub(crate) tail: Vec<u8>,
    /// Bytes of the first piece (the front of `queue`, or `tail`) already
    /// written.
    head: usize,
}

/// An output buffer is cut to this size once written, and kept for the next
/// replies and messages: allocating it again for every write cost a busy
/// subscriber a fifth of its server time in page faults and copies.
const KEEP_OUTPUT: usize = 64 * 1024;
/// What an idle connection's output buffer is cut back to (see
/// [`Output::release`]): Redis keeps a 16 KiB reply buffer per client too.
const IDLE_OUTPUT: usize = 16 * 1024;
/// The most pieces one `writev` takes.
const MAX_IOV: usize = 64;

impl Output {
    /// Bytes not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.queued + self.tail.len() - self.head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Pieces waiting besides the tail (Redis's `oll`).
    pub(crate) fn pieces(&self) -> usize {
        self.queue.len()
    }

    /// Lets go of a large buffer while nothing is pending: called for every
    /// connection about once a second, so that an idle one holds little.
    pub(crate) fn release(&mut self) {
        if self.is_empty() && self.tail.capacity() > IDLE_OUTPUT {
            self.tail = Vec::new();
        }
        if self.queue.is_empty() && self.queue.capacity() > 16 {
            self.queue = VecDeque::new();
        }
    }

    /// Appends `bytes` by reference: the buffer is shared, not copied.
    pub(crate) fn share(&mut self, bytes: Bytes) {
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.queued += tail.len();
            self.queue.push_back(Seg::Own(tail));
        }
        self.queued += bytes.len();
        self.queue.push_back(Seg::Shared(bytes));
    }

    /// Writes as much as `w` takes: `Ok(true)` once everything is written,
    /// `Ok(false)` if `w` would block first.
    pub(crate) fn write_to(&mut self, w: &mut impl Write) -> io::Result<bool> {
        loop {
            let result = if self.queue.is_empty() {
                if self.head == self.tail.len() {
                    self.tail.clear();
                    self.head = 0;
                    if self.tail.capacity() > KEEP_OUTPUT {
                        self.tail.shrink_to(KEEP_OUTPUT);
                    }
                    return Ok(true);
                }
                w.write(&self.tail[self.head..])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let mut n = 0;
                for (i, seg) in self.queue.iter().take(MAX_IOV).enumerate() {
                    let bytes = seg.bytes();
                    slices[i] = IoSlice::new(if i == 0 { &bytes[self.head..] } else { bytes });
                    n += 1;
                }
                if n < MAX_IOV && !self.tail.is_empty() {
                    slices[n] = IoSlice::new(&self.tail);
                    n += 1;
                }
                w.write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks `n` more bytes as written.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front() else {
                self.head += n;
                return;
            };
            let len = front.bytes().len();
            let left = len - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.queued -= len;
            self.head = 0;
            if let Some(Seg::Own(v)) = self.queue.pop_front() {
                // Reuse a written buffer for the tail rather than allocate.
                if self.tail.is_empty() && self.tail.capacity() < v.capacity() {
                    let mut v = v;
                    v.clear();
                    if v.capacity() <= KEEP_OUTPUT {
                        self.tail = v;
                    }
                }
            }
        }
    }
}

/// Writes a type byte, a decimal number and CRLF.
pub(crate) fn put_header(buf: &mut Vec<u8>, prefix: u8, n: i64) {
    if (0..10).contains(&n) {
        buf.extend_from_slice(&[prefix, b'0' + n as u8, b'\r', b'\n']);
        return;
    }
    buf.push(prefix);
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
        buf.push(b'-');
    }
    buf.extend_from_slice(&digits[i..]);
    buf.extend_from_slice(b"\r\n");
}

/// Writes a bulk string.
pub(crate) fn put_bulk(buf: &mut Vec<u8>, data: &[u8]) {
    put_header(buf, b'$', data.len() as i64);
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
}

/// A connection's output with its protocol version and reply switch.
#[derive(Default)]
pub(crate) struct Out {
    pub(crate) buf: Output,
    /// Whether the connection speaks RESP3 (after `HELLO 3`).
    pub(crate) resp3: bool,
    /// Replies are dropped (`CLIENT REPLY OFF` or `SKIP`); pushes are not.
    pub(crate) quiet: bool,
}

impl Out {
    fn reply(&mut self) -> Option<&mut Vec<u8>> {
        (!self.quiet).then_some(&mut self.buf.tail)
    }

    pub(crate) fn simple(&mut self, s: &str) {
        if let Some(buf) = self.reply() {
            buf.push(b'+');
            buf.extend_from_slice(s.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
    }

    /// An error reply; like Redis, newlines in it become spaces.
    pub(crate) fn error(&mut self, message: impl AsRef<[u8]>) {
        if let Some(buf) = self.reply() {
            buf.push(b'-');
            let message = message.as_ref().iter();
            buf.extend(message.map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            buf.extend_from_slice(b"\r\n");
        }
    }

    pub(crate) fn int(&mut self, n: i64) {
        if let Some(buf) = self.reply() {
            put_header(buf, b':', n);
        }
    }

    pub(crate) fn count(&mut self, n: usize) {
        self.int(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn bulk(&mut self, data: &[u8]) {
        if let Some(buf) = self.reply() {
            put_bulk(buf, data);
        }
    }

    pub(crate) fn nil(&mut self) {
        let resp3 = self.resp3;
        if let Some(buf) = self.reply() {
            buf.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
        }
    }

    pub(crate) fn array(&mut self, n: usize) {
        if let Some(buf) = self.reply() {
            put_header(buf, b'*', n as i64);
        }
    }

    /// A map of `n` pairs (RESP3), or a flat array of `2n` items (RESP2).
    pub(crate) fn map(&mut self, n: usize) {
        let resp3 = self.resp3;
        if let Some(buf) = self.reply() {
            if resp3 {
                put_header(buf, b'%', n as i64);
            } else {
                put_header(buf, b'*', 2 * n as i64);
            }
        }
    }

    /// A set (RESP3), or an array (RESP2).
    pub(crate) fn set(&mut self, n: usize) {
        let resp3 = self.resp3;
        if let Some(buf) = self.reply() {
            put_header(buf, if resp3 { b'~' } else { b'*' }, n as i64);
        }
    }

    /// A verbatim text string (RESP3), or a bulk string (RESP2).
    pub(crate) fn verbatim(&mut self, text: &[u8]) {
        let resp3 = self.resp3;
        if let Some(buf) = self.reply() {
            if resp3 {
                put_header(buf, b'=', text.len() as i64 + 4);
                buf.extend_from_slice(b"txt:");
                buf.extend_from_slice(text);
                buf.extend_from_slice(b"\r\n");
            } else {
                put_bulk(buf, text);
            }
        }
    }

    /// A subscription confirmation: a push, sent even while replies are
    /// off, as in Redis.
    pub(crate) fn confirm(&mut self, kind: &str, name: Option<&[u8]>, count: usize) {
        let buf = &mut self.buf.tail;
        buf.extend_from_slice(if self.resp3 { b">3\r\n" } else { b"*3\r\n" });
        put_bulk(buf, kind.as_bytes());
        match name {
            Some(name) => put_bulk(buf, name),
            None if self.resp3 => buf.extend_from_slice(b"_\r\n"),
            None => buf.extend_from_slice(b"$-1\r\n"),
        }
        put_header(buf, b':', count as i64);
    }
}

/// Payloads at least this long are shared by the outputs of a route's
/// subscribers; shorter ones are copied, which costs less than another
/// output piece.
const SHARE_AT: usize = 16 * 1024;

/// One route's message, encoded once for all its subscribers.
#[derive(Default)]
pub(crate) struct Frame {
    /// The whole message as a RESP2 array, or, for a shared payload,
    /// everything before the payload's bytes.
    bytes: Vec<u8>,
    /// The payload, when it is shared rather than copied.
    shared: Option<Bytes>,
}

impl Frame {
    /// Encodes `kind [pattern] channel payload`.
    pub(crate) fn encode(
        &mut self,
        kind: &str,
        pattern: Option<&[u8]>,
        channel: &[u8],
        payload: &Payload,
    ) {
        let b = &mut self.bytes;
        b.clear();
        put_header(b, b'*', if pattern.is_some() { 4 } else { 3 });
        put_bulk(b, kind.as_bytes());
        if let Some(pattern) = pattern {
            put_bulk(b, pattern);
        }
        put_bulk(b, channel);
        match payload.shared() {
            Some(shared) if shared.len() >= SHARE_AT => {
                put_header(b, b'$', shared.len() as i64);
                self.shared = Some(shared.clone());
            }
            _ => {
                put_bulk(b, payload.as_bytes());
                self.shared = None;
            }
        }
        // Not worth keeping a large scratch buffer.
        if b.capacity() > IDLE_OUTPUT && b.len() < IDLE_OUTPUT / 4 {
            b.shrink_to(IDLE_OUTPUT);
        }
    }

    /// Appends the message to `out`: a push in RESP3, an array in RESP2.
    pub(crate) fn write(&self, out: &mut Out) {
        let tail = &mut out.buf.tail;
        if out.resp3 {
            tail.push(b'>');
            tail.extend_from_slice(&self.bytes[1..]);
        } else {
            tail.extend_from_slice(&self.bytes);
        }
        if let Some(payload) = &self.shared {
            out.buf.share(payload.clone());
            out.buf.tail.extend_from_slice(b"\r\n");
        }
    }
}
