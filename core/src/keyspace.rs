//! Keyspace notifications: the `notify-keyspace-events` flags and the
//! messages Redis publishes when a key changes.
//!
//! A server that stores keys can tell subscribers about changes to them by
//! publishing on two families of ordinary pub/sub channels:
//!
//! - `__keyspace@<db>__:<key>` carries the *event name* (`del`, `set`,
//!   `expired`, ...) as its payload. Subscribe here to watch one key.
//! - `__keyevent@<db>__:<event>` carries the *key* as its payload. Subscribe
//!   here to watch one kind of event across all keys.
//!
//! Which messages are sent is configured by the `notify-keyspace-events`
//! string, modelled here by [`Flags`]. Every event belongs to one
//! [`EventClass`]; [`notifications`] returns the messages for one event, in
//! the order Redis publishes them. This module builds the messages only: the
//! caller publishes them through whatever registry or broker it uses.
//!
//! The receiving side has helpers too: [`keyspace_pattern`] is the pattern
//! to `PSUBSCRIBE` for every key under a prefix (the prefix glob-escaped),
//! [`NotificationChannel::parse`] takes a received channel apart into its
//! database and key (or event), and [`changes_value`] tells a cache which
//! events can leave a cached value stale.
//!
//! This module follows Redis's `src/notify.c`: `keyspaceEventsStringToFlags`
//! ([`Flags::parse`]), `keyspaceEventsFlagsToString` (the [`Display`](core::fmt::Display) impl of
//! [`Flags`]) and `notifyKeyspaceEvent` ([`notifications`]).
//!
//! # Flags
//!
//! | Char | Meaning |
//! |---|---|
//! | `K` | publish on the keyspace channel, `__keyspace@<db>__:<key>` |
//! | `E` | publish on the keyevent channel, `__keyevent@<db>__:<event>` |
//! | `g` | generic commands (`DEL`, `EXPIRE`, `RENAME`, ...) |
//! | `$` | string commands |
//! | `l` | list commands |
//! | `s` | set commands |
//! | `h` | hash commands |
//! | `z` | sorted set commands |
//! | `x` | expired events (a key's TTL ran out) |
//! | `e` | evicted events (a key was dropped for `maxmemory`) |
//! | `t` | stream commands |
//! | `m` | key-miss events (a read of a missing key) |
//! | `d` | module events |
//! | `n` | new-key events |
//! | `A` | alias for `g$lshzxetd`; it does *not* include `m` or `n` |
//!
//! Any other character, including NUL, spaces and upper-case class letters,
//! is an error ([`ParseFlagsError`]).
//!
//! # Guarantees
//!
//! - Nothing is published unless `K` or `E` is set, together with the class
//!   of the event. [`Flags::is_active`] tells whether any event at all can
//!   produce a message.
//! - Key-miss (`m`) and new-key (`n`) events are only published when their
//!   flag is set explicitly; `A` does not enable them.
//! - When both `K` and `E` are set, the keyspace message comes first.
//! - Keys and event names are bytes: NUL bytes and invalid UTF-8 are copied
//!   into channels and payloads unchanged, and nothing here panics on input.
//! - Printing [`Flags`] gives the normalized string Redis's `CONFIG GET`
//!   returns, and parsing that string back gives flags that print the same.
//!
//! # Example
//!
//! ```
//! use tidings_core::keyspace::{notifications, EventClass, Flags};
//!
//! let flags = Flags::parse("KEA")?;
//! assert_eq!(flags.to_string(), "AKE");
//!
//! let out = notifications(flags, 0, EventClass::Generic, b"del", b"mykey");
//! assert_eq!(out.len(), 2);
//! assert_eq!(out[0].channel, b"__keyspace@0__:mykey");
//! assert_eq!(out[0].payload, b"del");
//! assert_eq!(out[1].channel, b"__keyevent@0__:del");
//! assert_eq!(out[1].payload, b"mykey");
//!
//! // `A` does not cover key-miss events.
//! assert!(notifications(flags, 0, EventClass::KeyMiss, b"keymiss", b"k").is_empty());
//! # Ok::<(), tidings_core::keyspace::ParseFlagsError>(())
//! ```

use alloc::vec::Vec;
use core::fmt;
use core::ops::{BitOr, BitOrAssign};
use core::str::FromStr;

use smallvec::SmallVec;

/// The class of a keyspace event, which decides whether it is published.
///
/// Each class has one flag character in the `notify-keyspace-events` string;
/// see [`EventClass::flag_char`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventClass {
    /// Generic, type-independent commands such as `DEL`, `EXPIRE` and
    /// `RENAME`. Flag `g`.
    Generic,
    /// String commands. Flag `$`.
    String,
    /// List commands. Flag `l`.
    List,
    /// Set commands. Flag `s`.
    Set,
    /// Hash commands. Flag `h`.
    Hash,
    /// Sorted set commands. Flag `z`.
    ZSet,
    /// A key expired. Flag `x`.
    Expired,
    /// A key was evicted under `maxmemory`. Flag `e`.
    Evicted,
    /// Stream commands. Flag `t`.
    Stream,
    /// A read found no key. Flag `m`; not part of `A`.
    KeyMiss,
    /// Events raised by modules. Flag `d`.
    Module,
    /// A new key was created. Flag `n`; not part of `A`.
    New,
}

impl EventClass {
    /// Every class, in the order of Redis's `NOTIFY_*` bits.
    pub const ALL: [EventClass; 12] = [
        EventClass::Generic,
        EventClass::String,
        EventClass::List,
        EventClass::Set,
        EventClass::Hash,
        EventClass::ZSet,
        EventClass::Expired,
        EventClass::Evicted,
        EventClass::Stream,
        EventClass::KeyMiss,
        EventClass::Module,
        EventClass::New,
    ];

    /// Returns the character that enables this class in a
    /// `notify-keyspace-events` string.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::EventClass;
    ///
    /// assert_eq!(EventClass::String.flag_char(), '$');
    /// assert_eq!(EventClass::KeyMiss.flag_char(), 'm');
    /// ```
    #[must_use]
    pub const fn flag_char(self) -> char {
        match self {
            EventClass::Generic => 'g',
            EventClass::String => '$',
            EventClass::List => 'l',
            EventClass::Set => 's',
            EventClass::Hash => 'h',
            EventClass::ZSet => 'z',
            EventClass::Expired => 'x',
            EventClass::Evicted => 'e',
            EventClass::Stream => 't',
            EventClass::KeyMiss => 'm',
            EventClass::Module => 'd',
            EventClass::New => 'n',
        }
    }

    /// Returns the class whose flag character is `c`, if any.
    ///
    /// `K`, `E` and `A` are flags but not classes, so they give `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::EventClass;
    ///
    /// assert_eq!(EventClass::from_flag_char('z'), Some(EventClass::ZSet));
    /// assert_eq!(EventClass::from_flag_char('K'), None);
    /// ```
    #[must_use]
    pub const fn from_flag_char(c: char) -> Option<EventClass> {
        Some(match c {
            'g' => EventClass::Generic,
            '$' => EventClass::String,
            'l' => EventClass::List,
            's' => EventClass::Set,
            'h' => EventClass::Hash,
            'z' => EventClass::ZSet,
            'x' => EventClass::Expired,
            'e' => EventClass::Evicted,
            't' => EventClass::Stream,
            'm' => EventClass::KeyMiss,
            'd' => EventClass::Module,
            'n' => EventClass::New,
            _ => return None,
        })
    }

    /// The bit of this class inside [`Flags`].
    const fn bit(self) -> u16 {
        // Classes occupy bits 2..=13, after `K` (bit 0) and `E` (bit 1).
        1 << (2 + self as u16)
    }
}

/// `K`: publish on `__keyspace@<db>__:<key>`.
const KEYSPACE_BIT: u16 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
const KEYEVENT_BIT: u16 = 1 << 1;
/// The bits of all twelve classes.
const CLASS_MASK: u16 = 0xFFF << 2;
/// Every bit a [`Flags`] may hold.
#[cfg(test)]
const VALID_MASK: u16 = KEYSPACE_BIT | KEYEVENT_BIT | CLASS_MASK;
/// The classes of the `A` alias: `g$lshzxetd`, all but key-miss and new-key.
const ALL_BITS: u16 = CLASS_MASK & !EventClass::KeyMiss.bit() & !EventClass::New.bit();

/// The order in which `CONFIG GET` prints classes when `A` does not apply:
/// `g$lshzxetdn`. Key-miss (`m`) is printed later, after `K` and `E`.
const DISPLAY_ORDER: [EventClass; 11] = [
    EventClass::Generic,
    EventClass::String,
    EventClass::List,
    EventClass::Set,
    EventClass::Hash,
    EventClass::ZSet,
    EventClass::Expired,
    EventClass::Evicted,
    EventClass::Stream,
    EventClass::Module,
    EventClass::New,
];

/// The parsed value of `notify-keyspace-events`: which channels (`K`, `E`)
/// and which [`EventClass`]es are enabled.
///
/// The default value has no flags set, like the empty string, and publishes
/// nothing.
///
/// # Parsing and printing
///
/// [`Flags::parse`] accepts the characters `Ag$lshzxeKEtmdn` in any order
/// and with repeats. The [`Display`](fmt::Display) impl prints the
/// normalized string that Redis's `CONFIG GET` returns:
///
/// 1. If every class of `A` (`g$lshzxetd`) is set, it prints `A` and no
///    other class; a set `n` is then not printed.
/// 2. Otherwise it prints each set class in the order `g$lshzxetdn`.
/// 3. Then it prints `K`, `E` and `m`, in that order, for those set.
///
/// ```
/// use tidings_core::keyspace::Flags;
///
/// for (input, printed) in [("KA", "AK"), ("mKA", "AKm"), ("AKn", "AK"), ("Egn", "gnE"), ("Kg$", "g$K")] {
///     assert_eq!(Flags::parse(input)?.to_string(), printed);
/// }
/// # Ok::<(), tidings_core::keyspace::ParseFlagsError>(())
/// ```
///
/// Because of rule 1, parsing the printed string drops `n` when `A` is
/// printed, as it does in Redis. Printing is still idempotent: parsing the
/// printed string and printing again gives the same string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// Bit 0 is `K`, bit 1 is `E`, bits 2..=13 are the classes in
    /// [`EventClass::ALL`] order.
    ///
    /// Invariant: no bit outside `VALID_MASK` is set.
    bits: u16,
}

impl Flags {
    /// No flags: nothing is published. Same as the empty string.
    pub const EMPTY: Flags = Flags { bits: 0 };
    /// `K`: publish on the keyspace channel `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: Flags = Flags { bits: KEYSPACE_BIT };
    /// `E`: publish on the keyevent channel `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: Flags = Flags { bits: KEYEVENT_BIT };
    /// `A`: the classes `g$lshzxetd`. It excludes key-miss (`m`) and new-key
    /// (`n`), and sets neither `K` nor `E`.
    pub const ALL: Flags = Flags { bits: ALL_BITS };

    /// Parses a `notify-keyspace-events` string.
    ///
    /// Each byte must be one of `Ag$lshzxeKEtmdn`; the characters may come in
    /// any order and may repeat. The empty string gives [`Flags::EMPTY`].
    ///
    /// # Errors
    ///
    /// Returns a [`ParseFlagsError`] naming the first byte that is not a
    /// flag character.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::{EventClass, Flags};
    ///
    /// let flags = Flags::parse("Kg$")?;
    /// assert!(flags.contains(Flags::KEYSPACE));
    /// assert!(flags.contains_class(EventClass::Generic));
    /// assert!(!flags.contains_class(EventClass::List));
    /// assert_eq!(Flags::parse(b"")?, Flags::EMPTY);
    ///
    /// let err = Flags::parse("KEq").unwrap_err();
    /// assert_eq!(err.byte(), b'q');
    /// assert_eq!(err.position(), 2);
    /// # Ok::<(), tidings_core::keyspace::ParseFlagsError>(())
    /// ```
    pub fn parse(s: impl AsRef<[u8]>) -> Result<Flags, ParseFlagsError> {
        let mut bits = 0;
        for (position, &byte) in s.as_ref().iter().enumerate() {
            bits |= match byte {
                b'A' => ALL_BITS,
                b'K' => KEYSPACE_BIT,
                b'E' => KEYEVENT_BIT,
                _ => match EventClass::from_flag_char(byte as char) {
                    Some(class) => class.bit(),
                    None => return Err(ParseFlagsError { byte, position }),
                },
            };
        }
        Ok(Flags { bits })
    }

    /// Returns the flags holding only `class`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::{EventClass, Flags};
    ///
    /// assert_eq!(Flags::class(EventClass::Hash).to_string(), "h");
    /// ```
    #[must_use]
    pub const fn class(class: EventClass) -> Flags {
        Flags { bits: class.bit() }
    }

    /// Returns `true` if every flag of `other` is set in `self`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::Flags;
    ///
    /// let flags = Flags::parse("AK")?;
    /// assert!(flags.contains(Flags::ALL));
    /// assert!(flags.contains(Flags::KEYSPACE));
    /// assert!(!flags.contains(Flags::KEYSPACE | Flags::KEYEVENT));
    /// # Ok::<(), tidings_core::keyspace::ParseFlagsError>(())
    /// ```
    #[must_use]
    pub const fn contains(self, other: Flags) -> bool {
        self.bits & other.bits == other.bits
    }

    /// Returns `true` if events of `class` are enabled.
    ///
    /// This says nothing about `K` and `E`; see [`Flags::is_active`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::{EventClass, Flags};
    ///
    /// assert!(Flags::ALL.contains_class(EventClass::Stream));
    /// assert!(!Flags::ALL.contains_class(EventClass::KeyMiss));
    /// ```
    #[must_use]
    pub const fn contains_class(self, class: EventClass) -> bool {
        self.bits & class.bit() != 0
    }

    /// Returns `true` if no flag is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// Returns `true` if some event can be published: `K` or `E` is set,
    /// and at least one class is.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::Flags;
    ///
    /// assert!(Flags::parse("Kx")?.is_active());
    /// assert!(!Flags::parse("K")?.is_active()); // no class
    /// assert!(!Flags::parse("A")?.is_active()); // no channel
    /// # Ok::<(), tidings_core::keyspace::ParseFlagsError>(())
    /// ```
    #[must_use]
    pub const fn is_active(self) -> bool {
        self.bits & (KEYSPACE_BIT | KEYEVENT_BIT) != 0 && self.bits & CLASS_MASK != 0
    }

    /// Returns `self` with every flag of `other` added.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::{EventClass, Flags};
    ///
    /// let flags = Flags::KEYEVENT.with(Flags::ALL).with_class(EventClass::KeyMiss);
    /// assert_eq!(flags.to_string(), "AEm");
    /// ```
    #[must_use]
    pub const fn with(self, other: Flags) -> Flags {
        Flags {
            bits: self.bits | other.bits,
        }
    }

    /// Returns `self` with every flag of `other` removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tidings_core::keyspace::{EventClass, Flags};
    ///
    /// let flags = Flags::ALL.with(Flags::KEYSPACE).without(Flags::class(EventClass::Evicted));
    /// assert_eq!(flags.to_string(), "g$lshzxtdK");
    /// ```
    #[must_use]
    pub const fn without(self, other: Flags) -> Flags {
        Flags {
            bits: self.bits & !other.bits,
        }
    }

    /// Returns `self` with `class` enabled.
    #[must_use]
    pub const fn with_class(self, class: EventClass) -> Flags {
        self.with(Flags::class(class))
    }

    /// Returns `self` with `class` disabled.
    #[must_use]
    pub const fn without_class(self, class: EventClass) -> Flags {
        self.without(Flags::class(class))
    }

    /// Asserts the invariant on `bits`.
    #[cfg(test)]
    fn check_invariants(&self) {
        assert_eq!(
            self.bits & !VALID_MASK,
            0,
            "stray bits in {:#06x}",
            self.bits
        );
    }
}

impl From<EventClass> for Flags {
    fn from(class: EventClass) -> Flags {
        Flags::class(class)
    }
}

impl BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

impl BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        *self = self.with(rhs);
    }
}

impl FromStr for Flags {
    type Err = ParseFlagsError;

    fn from_str(s: &str) -> Result<Flags, ParseFlagsError> {
        Flags::parse(s)
    }
}

impl fmt::Display for Flags {
    /// Writes the normalized string of `CONFIG GET notify-keyspace-events`,
    /// as Redis's `keyspaceEventsFlagsToString` does. Width and alignment
    /// are honoured.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // At most 10 classes (9 of `A`'s plus `n`) and `K`, `E`, `m`.
        let mut buf = [0u8; 16];
        let mut len = 0;
        let mut push = |c: char| {
            // Every flag character is ASCII, so this is one byte.
            buf[len] = c as u8;
            len += 1;
        };
        if self.contains(Flags::ALL) {
            push('A');
        } else {
            for class in DISPLAY_ORDER {
                if self.contains_class(class) {
                    push(class.flag_char());
                }
            }
        }
        if self.contains(Flags::KEYSPACE) {
            push('K');
        }
        if self.contains(Flags::KEYEVENT) {
            push('E');
        }
        if self.contains_class(EventClass::KeyMiss) {
            push('m');
        }
        let s = core::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?;
        f.pad(s)
    }
}

impl fmt::Debug for Flags {
    /// Lists every set flag, without the `A` shorthand, so that no flag is
    /// hidden: `Flags("g$lshzxetdnKE")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flags(\"")?;
        for class in EventClass::ALL {
            if self.contains_class(class) {
                fmt::Write::write_char(f, class.flag_char())?;
            }
        }
        if self.contains(Flags::KEYSPACE) {
            f.write_str("K")?;
        }
        if self.contains(Flags::KEYEVENT) {
            f.write_str("E")?;
        }
        f.write_str("\")")
    }
}

/// The error returned by [`Flags::parse`] for a byte that is not one of
/// `Ag$lshzxeKEtmdn`.
///
/// Its [`Display`](fmt::Display) text is Redis's message, word for word, so
/// that a server built on this crate can return it unchanged from
/// `CONFIG SET`. The offending byte and its position are available through
/// [`ParseFlagsError::byte`] and [`ParseFlagsError::position`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ParseFlagsError {
    /// The first byte of the input that is not a flag character.
    byte: u8,
    /// The index of `byte` in the input.
    position: usize,
}

impl ParseFlagsError {
    /// Returns the first byte of the input that is not a flag character.
    ///
    /// For a non-ASCII character this is the first byte of its UTF-8
    /// encoding.
    #[must_use]
    pub const fn byte(&self) -> u8 {
        self.byte
    }

    /// Returns the byte offset of [`ParseFlagsError::byte`] in the input.
    #[must_use]
    pub const fn position(&self) -> usize {
        self.position
    }
}

impl fmt::Display for ParseFlagsError {
    /// Writes Redis's message exactly:
    /// `Invalid event class character. Use 'Ag$lshzxeKEtmdn'.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
    }
}

impl core::error::Error for ParseFlagsError {}

/// One message to publish: a channel and its payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Notification {
    /// The channel, `__keyspace@<db>__:<key>` or `__keyevent@<db>__:<event>`.
    pub channel: Vec<u8>,
    /// The event name on a keyspace channel, the key on a keyevent channel.
    pub payload: Vec<u8>,
}

/// The messages for one event, at most two, in publishing order. Both fit
/// inline, so only their channels and payloads allocate.
pub type Notifications = SmallVec<[Notification; 2]>;

/// Returns the keyspace channel of `key` in database `db`:
/// `__keyspace@<db>__:<key>`.
///
/// The key is copied byte for byte; it may hold NUL bytes or invalid UTF-8.
///
/// # Examples
///
/// ```
/// use tidings_core::keyspace::keyspace_channel;
///
/// assert_eq!(keyspace_channel(0, b"mykey"), b"__keyspace@0__:mykey");
/// assert_eq!(keyspace_channel(15, b"a\0b"), b"__keyspace@15__:a\0b");
/// ```
#[must_use]
pub fn keyspace_channel(db: u32, key: &[u8]) -> Vec<u8> {
    channel(b"__keyspace@", db, key)
}

/// Returns the keyevent channel of `event` in database `db`:
/// `__keyevent@<db>__:<event>`.
///
/// # Examples
///
/// ```
/// use tidings_core::keyspace::keyevent_channel;
///
/// assert_eq!(keyevent_channel(0, b"del"), b"__keyevent@0__:del");
/// assert_eq!(keyevent_channel(3, b"expired"), b"__keyevent@3__:expired");
/// ```
#[must_use]
pub fn keyevent_channel(db: u32, event: &[u8]) -> Vec<u8> {
    channel(b"__keyevent@", db, event)
}

/// A notification channel taken apart: which family, which database, and
/// the key (keyspace) or event name (keyevent) it names.
///
/// [`NotificationChannel::parse`] accepts exactly the names that
/// [`keyspace_channel`] and [`keyevent_channel`] build (and Redis sends):
/// the database in decimal without leading zeros (it fits a `u32`), then
/// `__:`, then any bytes, `__:` and none at all included.
///
/// ```
/// use tidings_core::keyspace::{keyspace_channel, NotificationChannel};
///
/// let channel = keyspace_channel(3, b"cache:user:1");
/// assert_eq!(
///     NotificationChannel::parse(&channel),
///     Some(NotificationChannel::Keyspace { db: 3, key: b"cache:user:1" })
/// );
/// assert_eq!(
///     NotificationChannel::parse(b"__keyevent@0__:expired"),
///     Some(NotificationChannel::Keyevent { db: 0, event: b"expired" })
/// );
/// assert_eq!(NotificationChannel::parse(b"__keyspace@03__:k"), None); // not Redis's spelling
/// assert_eq!(NotificationChannel::parse(b"news"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationChannel<'a> {
    /// `__keyspace@<db>__:<key>`: the payload is the event name.
    Keyspace {
        /// The database.
        db: u32,
        /// The key the event happened to.
        key: &'a [u8],
    },
    /// `__keyevent@<db>__:<event>`: the payload is the key.
    Keyevent {
        /// The database.
        db: u32,
        /// The event's name, such as `del` or `expired`.
        event: &'a [u8],
    },
}

impl<'a> NotificationChannel<'a> {
    /// Parses a keyspace or keyevent channel name; `None` for any other
    /// channel. Runs in O(length of the prefix), never allocates and never
    /// panics.
    #[must_use]
    pub fn parse(channel: &'a [u8]) -> Option<NotificationChannel<'a>> {
        if let Some(rest) = channel.strip_prefix(b"__keyspace@") {
            let (db, key) = split_db(rest)?;
            Some(NotificationChannel::Keyspace { db, key })
        } else {
            let rest = channel.strip_prefix(b"__keyevent@")?;
            let (db, event) = split_db(rest)?;
            Some(NotificationChannel::Keyevent { db, event })
        }
    }

    /// The database the notification is about.
    #[must_use]
    pub const fn db(&self) -> u32 {
        match *self {
            NotificationChannel::Keyspace { db, .. } | NotificationChannel::Keyevent { db, .. } => {
                db
            }
        }
    }
}

/// Splits `<db>__:<rest>` into the database and the rest, accepting the
/// database only as Redis prints it (`%d`: no sign, no leading zero).
fn split_db(s: &[u8]) -> Option<(u32, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    // `u32::MAX` has 10 digits; "0" is the only number starting with 0.
    if digits == 0 || digits > 10 || (digits > 1 && s[0] == b'0') {
        return None;
    }
    let (number, rest) = s.split_at(digits);
    let rest = rest.strip_prefix(b"__:")?;
    let mut db: u32 = 0;
    for &digit in number {
        db = db.checked_mul(10)?.checked_add(u32::from(digit - b'0'))?;
    }
    Some((db, rest))
}

/// Returns the pattern that matches the keyspace channel of every key in
/// database `db` that starts with `key_prefix`: `__keyspace@<db>__:`, the
/// prefix with every glob metacharacter (`*`, `?`, `[`, `]`, `\`)
/// escaped by a backslash, then `*`. `PSUBSCRIBE` to it to hear about a
/// whole family of keys.
///
/// Escaping matters: a prefix such as `cache[1]:` would otherwise be read
/// as a character class and match `cache1:` but not itself.
///
/// # Examples
///
/// ```
/// use tidings_core::glob::matches;
/// use tidings_core::keyspace::{keyspace_channel, keyspace_pattern};
///
/// assert_eq!(keyspace_pattern(0, b"cache:"), b"__keyspace@0__:cache:*");
/// let pattern = keyspace_pattern(0, b"cache[1]:");
/// assert_eq!(pattern, b"__keyspace@0__:cache\\[1\\]:*");
/// assert!(matches(&pattern, &keyspace_channel(0, b"cache[1]:user")));
/// assert!(!matches(&pattern, &keyspace_channel(0, b"cache1:user")));
/// ```
#[must_use]
pub fn keyspace_pattern(db: u32, key_prefix: &[u8]) -> Vec<u8> {
    let escapes = key_prefix.iter().filter(|b| is_glob_special(**b)).count();
    let mut out = channel(b"__keyspace@", db, b"");
    out.reserve_exact(key_prefix.len() + escapes + 1);
    for &byte in key_prefix {
        if is_glob_special(byte) {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'*');
    out
}

/// The bytes that mean something outside a class in a Redis glob, or
/// start one.
const fn is_glob_special(byte: u8) -> bool {
    matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\')
}

/// Returns whether an event can change a key's value or existence, so that
/// a cache of the key must drop its copy: `false` only for the events that
/// leave the value as it was, `true` for every other name, unknown ones
/// included (a cache that cannot tell must assume the worst).
///
/// The events that leave the value alone, from Redis 7's sources:
///
/// | event | sent when | why the value is unchanged |
/// |---|---|---|
/// | `expire` | a TTL is set or changed (`EXPIRE`, `SET … EX`, `GETEX`) | only the TTL changed; when it runs out, `expired` follows, and a TTL already in the past sends `del` instead |
/// | `persist` | a TTL is removed (`PERSIST`, `GETEX PERSIST`) | only the TTL changed |
/// | `hexpire`, `hpersist` | a hash field's TTL is set or removed (Redis 7.4) | only a TTL changed; `hexpired` follows when a field expires |
/// | `keymiss` | a read found no key (flag `m`) | it is a read |
/// | `new` | a key is created (flag `n`) | the command that created it sends its own event right after |
///
/// So `SET k v EX 10` sends `set` (changes) and `expire` (does not): one
/// invalidation, not two.
///
/// # Examples
///
/// ```
/// use tidings_core::keyspace::changes_value;
///
/// for event in ["set", "del", "expired", "evicted", "rename_from", "incrby", "lpush", "hset"] {
///     assert!(changes_value(event.as_bytes()), "{event}");
/// }
/// for event in ["expire", "persist", "keymiss", "new"] {
///     assert!(!changes_value(event.as_bytes()), "{event}");
/// }
/// assert!(changes_value(b"some_future_event"));
/// ```
#[must_use]
pub fn changes_value(event: &[u8]) -> bool {
    !matches!(
        event,
        b"expire" | b"persist" | b"hexpire" | b"hpersist" | b"keymiss" | b"new"
    )
}

/// Builds `<prefix><db>__:<suffix>` in one allocation.
fn channel(prefix: &[u8], db: u32, suffix: &[u8]) -> Vec<u8> {
    // `u32::MAX` has 10 decimal digits.
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    let mut n = db;
    loop {
        start -= 1;
        // `n % 10 < 10`, so the cast is lossless.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[start..];

    let mut out = Vec::with_capacity(prefix.len() + digits.len() + 3 + suffix.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"__:");
    out.extend_from_slice(suffix);
    out
}

/// Returns the messages Redis would publish for one event, in order.
///
/// `class` is the class of the event, `event` its name (such as `del` or
/// `expired`) and `key` the key it happened to, in database `db`. This
/// mirrors `notifyKeyspaceEvent` in Redis's `src/notify.c`:
///
/// - If `class` is not enabled in `flags`, the result is empty. `A` does not
///   enable [`EventClass::KeyMiss`] or [`EventClass::New`]; only `m` and `n`
///   do.
/// - Otherwise, if `K` is set, the first message goes to
///   `__keyspace@<db>__:<key>` with the event name as payload.
/// - Then, if `E` is set, a message goes to `__keyevent@<db>__:<event>` with
///   the key as payload.
///
/// # Examples
///
/// ```
/// use tidings_core::keyspace::{notifications, EventClass, Flags, Notification};
///
/// let flags = Flags::parse("Ex")?;
/// let out = notifications(flags, 2, EventClass::Expired, b"expired", b"session:1");
/// assert_eq!(
///     out.as_slice(),
///     [Notification {
///         channel: b"__keyevent@2__:expired".to_vec(),
///         payload: b"session:1".to_vec(),
///     }]
/// );
///
/// // Generic events are not enabled by `Ex`.
/// assert!(notifications(flags, 2, EventClass::Generic, b"del", b"session:1").is_empty());
/// # Ok::<(), tidings_core::keyspace::ParseFlagsError>(())
/// ```
#[must_use]
pub fn notifications(
    flags: Flags,
    db: u32,
    class: EventClass,
    event: &[u8],
    key: &[u8],
) -> Notifications {
    let mut out = Notifications::new();
    if !flags.contains_class(class) {
        return out;
    }
    if flags.contains(Flags::KEYSPACE) {
        out.push(Notification {
            channel: keyspace_channel(db, key),
            payload: event.to_vec(),
        });
    }
    if flags.contains(Flags::KEYEVENT) {
        out.push(Notification {
            channel: keyevent_channel(db, event),
            payload: key.to_vec(),
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::{String, ToString};

    /// Every valid `Flags` value: all 2^14 combinations of `K`, `E` and the
    /// twelve classes.
    fn all_flags() -> impl Iterator<Item = Flags> {
        (0..=VALID_MASK)
            .filter(|bits| bits & !VALID_MASK == 0)
            .map(|bits| Flags { bits })
    }

    fn parse(s: &str) -> Flags {
        let flags = Flags::parse(s).unwrap();
        flags.check_invariants();
        flags
    }

    #[test]
    fn all_flags_covers_every_combination() {
        assert_eq!(all_flags().count(), 1 << 14);
    }

    #[test]
    fn normalization_examples_from_redis() {
        // REDIS-SEMANTICS.md section 5, checked on Redis 7.0.15.
        for (input, printed) in [
            ("KA", "AK"),
            ("mKA", "AKm"),
            ("AKn", "AK"),
            ("Egn", "gnE"),
            ("Kg$", "g$K"),
        ] {
            assert_eq!(parse(input).to_string(), printed, "input {input:?}");
        }
    }

    #[test]
    fn normalization_more_cases() {
        for (input, printed) in [
            // Every class spelled out is the same as `A`.
            ("g$lshzxetd", "A"),
            ("dtexzhsl$g", "A"),
            // One class short of `A` lists the classes, in display order.
            ("$lshzxetd", "$lshzxetd"),
            ("ndtexzhsl$", "$lshzxetdn"),
            // `m` always comes last, after `K` and `E`.
            ("mEK", "KEm"),
            ("mg", "gm"),
            ("m", "m"),
            // Repeats collapse.
            ("KKgg", "gK"),
            ("AA", "A"),
            // Everything set.
            ("AKEmn", "AKEm"),
            ("KE", "KE"),
        ] {
            assert_eq!(parse(input).to_string(), printed, "input {input:?}");
        }
    }

    #[test]
    fn empty_string_means_no_flags() {
        let flags = parse("");
        assert_eq!(flags, Flags::EMPTY);
        assert_eq!(flags, Flags::default());
        assert!(flags.is_empty());
        assert_eq!(flags.to_string(), "");
        assert_eq!(Flags::parse(b"").unwrap(), Flags::EMPTY);
    }

    #[test]
    fn a_excludes_key_miss_and_new() {
        let a = parse("A");
        assert_eq!(a, Flags::ALL);
        assert!(!a.contains_class(EventClass::KeyMiss));
        assert!(!a.contains_class(EventClass::New));
        assert!(!a.contains(Flags::KEYSPACE));
        assert!(!a.contains(Flags::KEYEVENT));
        for class in EventClass::ALL {
            let expected = !matches!(class, EventClass::KeyMiss | EventClass::New);
            assert_eq!(a.contains_class(class), expected, "{class:?}");
        }
    }

    #[test]
    fn each_flag_char_sets_exactly_its_bit() {
        for class in EventClass::ALL {
            let mut buf = [0u8; 4];
            let flags = parse(class.flag_char().encode_utf8(&mut buf));
            assert_eq!(flags, Flags::class(class));
            assert_eq!(EventClass::from_flag_char(class.flag_char()), Some(class));
        }
        assert_eq!(parse("K"), Flags::KEYSPACE);
        assert_eq!(parse("E"), Flags::KEYEVENT);
        for c in ['K', 'E', 'A'] {
            assert_eq!(EventClass::from_flag_char(c), None);
        }
    }

    #[test]
    fn error_text_is_redis_verbatim() {
        let err = Flags::parse("KEq").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        );
        assert_eq!(err.byte(), b'q');
        assert_eq!(err.position(), 2);
        let _: &dyn core::error::Error = &err;
    }

    #[test]
    fn invalid_characters_are_rejected_at_the_first_one() {
        for (input, byte, position) in [
            ("a", b'a', 0),
            ("G", b'G', 0),       // classes are case-sensitive
            ("k", b'k', 0),       // so are K and E
            ("K E", b' ', 1),     // no separators
            ("KE\0", 0, 2),       // NUL does not end the string
            ("g!x?", b'!', 1),    // the first bad byte is reported
            ("A\u{e9}", 0xC3, 1), // first byte of a multi-byte character
        ] {
            let err = Flags::parse(input).unwrap_err();
            assert_eq!((err.byte(), err.position()), (byte, position), "{input:?}");
        }
        let err = Flags::parse([b'K', 0xFF]).unwrap_err();
        assert_eq!((err.byte(), err.position()), (0xFF, 1));
    }

    #[test]
    fn every_byte_is_either_a_flag_or_an_error() {
        for byte in 0..=u8::MAX {
            let valid = b"Ag$lshzxeKEtmdn".contains(&byte);
            assert_eq!(Flags::parse([byte]).is_ok(), valid, "byte {byte:#04x}");
        }
    }

    #[test]
    fn from_str_matches_parse() {
        assert_eq!("AKE".parse::<Flags>().unwrap(), parse("AKE"));
        assert!("AKEQ".parse::<Flags>().is_err());
    }

    #[test]
    fn display_is_idempotent_for_every_combination() {
        for flags in all_flags() {
            let printed = flags.to_string();
            let reparsed = parse(&printed);
            assert_eq!(reparsed.to_string(), printed, "{flags:?}");
        }
    }

    #[test]
    fn display_round_trip_loses_only_n_under_a() {
        // The printed string drops `n` exactly when `A` is printed.
        for flags in all_flags() {
            let reparsed = parse(&flags.to_string());
            let expected = if flags.contains(Flags::ALL) {
                flags.without_class(EventClass::New)
            } else {
                flags
            };
            assert_eq!(reparsed, expected, "{flags:?}");
        }
    }

    #[test]
    fn display_honours_width() {
        assert_eq!(format!("[{:>5}]", parse("gK")), "[   gK]");
        assert_eq!(format!("[{:<5}]", parse("gK")), "[gK   ]");
    }

    #[test]
    fn debug_shows_every_flag() {
        assert_eq!(format!("{:?}", parse("AKEmn")), "Flags(\"g$lshzxetmdnKE\")");
        assert_eq!(format!("{:?}", Flags::EMPTY), "Flags(\"\")");
    }

    #[test]
    fn builders_and_operators() {
        let mut flags = Flags::KEYSPACE | Flags::class(EventClass::List);
        flags |= EventClass::Hash.into();
        flags.check_invariants();
        assert_eq!(flags.to_string(), "lhK");
        assert!(flags.contains(Flags::KEYSPACE | Flags::class(EventClass::Hash)));
        assert!(flags.contains(Flags::EMPTY));
        let flags = flags
            .without(Flags::KEYSPACE)
            .with(Flags::KEYEVENT)
            .without_class(EventClass::List)
            .with_class(EventClass::New);
        flags.check_invariants();
        assert_eq!(flags.to_string(), "hnE");
    }

    #[test]
    fn is_active_needs_a_channel_and_a_class() {
        assert!(!parse("").is_active());
        assert!(!parse("K").is_active());
        assert!(!parse("KE").is_active());
        assert!(!parse("A").is_active());
        assert!(!parse("mn").is_active());
        assert!(parse("Kg").is_active());
        assert!(parse("Em").is_active());
        assert!(parse("KEA").is_active());
        // `is_active` is exactly "some event produces a message".
        for flags in all_flags() {
            let publishes = EventClass::ALL
                .iter()
                .any(|&class| !notifications(flags, 0, class, b"ev", b"key").is_empty());
            assert_eq!(flags.is_active(), publishes, "{flags:?}");
        }
    }

    #[test]
    fn channel_names() {
        assert_eq!(keyspace_channel(0, b"foo"), b"__keyspace@0__:foo");
        assert_eq!(keyevent_channel(0, b"del"), b"__keyevent@0__:del");
        assert_eq!(keyspace_channel(9, b""), b"__keyspace@9__:");
        assert_eq!(keyspace_channel(10, b"k"), b"__keyspace@10__:k");
        assert_eq!(
            keyevent_channel(u32::MAX, b"e"),
            b"__keyevent@4294967295__:e"
        );
        for db in [0, 1, 7, 10, 99, 100, 12345, u32::MAX] {
            let expected = format!("__keyspace@{db}__:x");
            assert_eq!(keyspace_channel(db, b"x"), expected.as_bytes());
        }
    }

    #[test]
    fn binary_keys_are_copied_verbatim() {
        // Keys and events are bytes, not text.
        let key: &[u8] = b"a\0b\xFF\xC3(";
        let mut expected = b"__keyspace@0__:".to_vec();
        expected.extend_from_slice(key);
        assert_eq!(keyspace_channel(0, key), expected);

        let out = notifications(parse("KEg"), 0, EventClass::Generic, b"d\0l", key);
        assert_eq!(out[0].channel, expected);
        assert_eq!(out[0].payload, b"d\0l");
        assert_eq!(out[1].channel, b"__keyevent@0__:d\0l");
        assert_eq!(out[1].payload, key);
    }

    #[test]
    fn keyspace_message_comes_before_keyevent() {
        let out = notifications(parse("EKg"), 3, EventClass::Generic, b"del", b"k");
        let channels: alloc::vec::Vec<String> = out
            .iter()
            .map(|n| String::from_utf8(n.channel.clone()).unwrap())
            .collect();
        assert_eq!(channels, ["__keyspace@3__:k", "__keyevent@3__:del"]);
        assert_eq!(out[0].payload, b"del");
        assert_eq!(out[1].payload, b"k");
    }

    #[test]
    fn single_channel_flags_send_one_message() {
        let out = notifications(parse("K$"), 0, EventClass::String, b"set", b"k");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].channel, b"__keyspace@0__:k");
        let out = notifications(parse("E$"), 0, EventClass::String, b"set", b"k");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].channel, b"__keyevent@0__:set");
    }

    #[test]
    fn nothing_without_a_channel_or_a_class() {
        // Only `K`/`E`, no class: the class check fails.
        assert!(notifications(parse("KE"), 0, EventClass::Generic, b"del", b"k").is_empty());
        // Only classes, neither `K` nor `E`: nowhere to publish.
        assert!(notifications(parse("Amn"), 0, EventClass::Generic, b"del", b"k").is_empty());
        // A different class from the event's.
        assert!(notifications(parse("KEl"), 0, EventClass::Set, b"sadd", b"k").is_empty());
        assert!(notifications(Flags::EMPTY, 0, EventClass::Generic, b"del", b"k").is_empty());
    }

    #[test]
    fn key_miss_and_new_need_their_own_flags() {
        // `A` does not include `m` or `n`.
        let a = parse("KEA");
        assert!(notifications(a, 0, EventClass::KeyMiss, b"keymiss", b"k").is_empty());
        assert!(notifications(a, 0, EventClass::New, b"new", b"k").is_empty());
        assert_eq!(
            notifications(parse("KEAm"), 0, EventClass::KeyMiss, b"keymiss", b"k").len(),
            2
        );
        assert_eq!(
            notifications(parse("KEn"), 0, EventClass::New, b"new", b"k").len(),
            2
        );
    }

    #[test]
    fn notifications_match_a_naive_model_for_every_combination() {
        for flags in all_flags() {
            for class in EventClass::ALL {
                let out = notifications(flags, 1, class, b"ev", b"key");
                let mut expected = alloc::vec::Vec::new();
                let enabled = flags.to_string().contains(class.flag_char())
                    || (flags.contains(Flags::ALL)
                        && !matches!(class, EventClass::KeyMiss | EventClass::New))
                    || (class == EventClass::New && flags.contains_class(EventClass::New));
                if enabled && flags.contains(Flags::KEYSPACE) {
                    expected.push((b"__keyspace@1__:key".to_vec(), b"ev".to_vec()));
                }
                if enabled && flags.contains(Flags::KEYEVENT) {
                    expected.push((b"__keyevent@1__:ev".to_vec(), b"key".to_vec()));
                }
                let got: alloc::vec::Vec<_> =
                    out.into_iter().map(|n| (n.channel, n.payload)).collect();
                assert_eq!(got, expected, "{flags:?} {class:?}");
            }
        }
    }

    #[test]
    fn notification_channels_parse_back() {
        for db in [0, 1, 9, 10, 15, 99, 100, 12345, u32::MAX] {
            for name in [
                &b""[..],
                b"k",
                b"cache:user:1",
                b"__:",
                b"a\0b\xFF",
                b"9__:x",
            ] {
                let ks = keyspace_channel(db, name);
                assert_eq!(
                    NotificationChannel::parse(&ks),
                    Some(NotificationChannel::Keyspace { db, key: name })
                );
                let ke = keyevent_channel(db, name);
                let parsed = NotificationChannel::parse(&ke).unwrap();
                assert_eq!(parsed, NotificationChannel::Keyevent { db, event: name });
                assert_eq!(parsed.db(), db);
            }
        }
    }

    #[test]
    fn only_redis_spellings_are_notification_channels() {
        for channel in [
            &b""[..],
            b"news",
            b"__keyspace@",
            b"__keyspace@0",
            b"__keyspace@0__",
            b"__keyspace@0_:k",
            b"__keyspace@__:k",            // no database
            b"__keyspace@00__:k",          // leading zero
            b"__keyspace@01__:k",          // leading zero
            b"__keyspace@+1__:k",          // sign
            b"__keyspace@-1__:k",          // negative
            b"__keyspace@ 1__:k",          // space
            b"__keyspace@1a__:k",          // not a number
            b"__keyspace@4294967296__:k",  // u32::MAX + 1
            b"__keyspace@99999999999__:k", // 11 digits
            b"__keyspace@\xd9\xa3__:k",    // a non-ASCII digit
            b"__KEYSPACE@0__:k",           // case matters
            b"__keyevents@0__:del",
            b"x__keyspace@0__:k",
            b"__keyevent@0__del",
        ] {
            assert_eq!(NotificationChannel::parse(channel), None, "{channel:?}");
        }
        // The largest database, and the shortest names.
        assert_eq!(
            NotificationChannel::parse(b"__keyevent@4294967295__:"),
            Some(NotificationChannel::Keyevent {
                db: u32::MAX,
                event: b""
            })
        );
    }

    #[test]
    fn parsing_a_huge_channel_looks_at_its_prefix_only() {
        let mut channel = keyspace_channel(7, b"");
        channel.resize(channel.len() + (1 << 20), b'*');
        match NotificationChannel::parse(&channel) {
            Some(NotificationChannel::Keyspace { db: 7, key }) => assert_eq!(key.len(), 1 << 20),
            other => panic!("{other:?}"),
        }
        // A megabyte of digits is not a database.
        let mut digits = b"__keyspace@".to_vec();
        digits.resize(digits.len() + (1 << 20), b'1');
        digits.extend_from_slice(b"__:k");
        assert_eq!(NotificationChannel::parse(&digits), None);
    }

    #[test]
    fn keyspace_patterns_escape_the_prefix() {
        use crate::glob::matches;
        assert_eq!(keyspace_pattern(0, b"cache:"), b"__keyspace@0__:cache:*");
        assert_eq!(keyspace_pattern(12, b""), b"__keyspace@12__:*");
        assert_eq!(
            keyspace_pattern(0, b"a*b?c[d]e\\f^-"),
            b"__keyspace@0__:a\\*b\\?c\\[d\\]e\\\\f^-*"
        );
        // Every special byte in the prefix matches only itself.
        for prefix in [
            &b"*"[..],
            b"?",
            b"[",
            b"]",
            b"\\",
            b"[^a]",
            b"[a-z]",
            b"\\*",
        ] {
            let pattern = keyspace_pattern(0, prefix);
            let mut key = prefix.to_vec();
            key.extend_from_slice(b"rest");
            assert!(matches(&pattern, &keyspace_channel(0, &key)), "{prefix:?}");
            assert!(
                matches(&pattern, &keyspace_channel(0, prefix)),
                "{prefix:?}"
            );
            assert!(
                !matches(&pattern, &keyspace_channel(0, b"zrest")),
                "{prefix:?}"
            );
            assert!(!matches(&pattern, &keyspace_channel(1, &key)), "{prefix:?}");
            assert!(!matches(&pattern, &keyevent_channel(0, &key)), "{prefix:?}");
        }
    }

    #[test]
    fn changes_value_spares_only_ttl_reads_and_creation() {
        let unchanged = [
            &b"expire"[..],
            b"persist",
            b"hexpire",
            b"hpersist",
            b"keymiss",
            b"new",
        ];
        for event in unchanged {
            assert!(!changes_value(event), "{event:?}");
        }
        // Events Redis 7 sends for writes, deletions, expiry and eviction.
        for event in [
            &b"set"[..],
            b"setrange",
            b"incrby",
            b"incrbyfloat",
            b"append",
            b"del",
            b"unlink",
            b"rename_from",
            b"rename_to",
            b"move_from",
            b"move_to",
            b"copy_to",
            b"restore",
            b"expired",
            b"evicted",
            b"hexpired",
            b"lpush",
            b"hset",
            b"hdel",
            b"sadd",
            b"zadd",
            b"xadd",
            b"sortstore",
        ] {
            assert!(changes_value(event), "{event:?}");
        }
        // Close spellings and unknown names are changes: when in doubt,
        // invalidate.
        for event in [
            &b""[..],
            b"EXPIRE",
            b"expire ",
            b"expires",
            b"\0",
            b"persisted",
        ] {
            assert!(changes_value(event), "{event:?}");
        }
    }

    mod props {
        use super::*;
        use crate::glob::matches;
        use proptest::prelude::*;

        fn bytes() -> impl Strategy<Value = alloc::vec::Vec<u8>> {
            // Biased towards the bytes that are special somewhere here.
            prop::collection::vec(
                prop_oneof![
                    3 => any::<u8>(),
                    2 => prop::sample::select(b"*?[]\\^-_:@0".to_vec()),
                ],
                0..12,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4_000))]

            /// The pattern matches a key's channel exactly when the key
            /// starts with the prefix and the database is the same.
            #[test]
            fn keyspace_pattern_matches_exactly_the_prefixed_keys(
                prefix in bytes(), key in bytes(), db in 0u32..3, other_db in 0u32..3,
            ) {
                let pattern = keyspace_pattern(db, &prefix);
                let channel = keyspace_channel(other_db, &key);
                prop_assert_eq!(
                    matches(&pattern, &channel),
                    db == other_db && key.starts_with(&prefix)
                );
                let mut prefixed = prefix.clone();
                prefixed.extend_from_slice(&key);
                prop_assert!(matches(&pattern, &keyspace_channel(db, &prefixed)));
            }

            /// Parsing inverts building, and accepts nothing else.
            #[test]
            fn parse_inverts_the_builders(db: u32, name in bytes(), noise in bytes()) {
                let ks = keyspace_channel(db, &name);
                prop_assert_eq!(
                    NotificationChannel::parse(&ks),
                    Some(NotificationChannel::Keyspace { db, key: &name })
                );
                let ke = keyevent_channel(db, &name);
                prop_assert_eq!(
                    NotificationChannel::parse(&ke),
                    Some(NotificationChannel::Keyevent { db, event: &name })
                );
                // Whatever parses was built by a builder.
                match NotificationChannel::parse(&noise) {
                    Some(NotificationChannel::Keyspace { db, key }) => {
                        prop_assert_eq!(keyspace_channel(db, key), noise.clone());
                    }
                    Some(NotificationChannel::Keyevent { db, event }) => {
                        prop_assert_eq!(keyevent_channel(db, event), noise.clone());
                    }
                    None => {}
                }
            }
        }
    }

    #[test]
    fn public_types_are_send_sync_unpin() {
        fn check<T: Send + Sync + Unpin + core::panic::UnwindSafe>() {}
        check::<Flags>();
        check::<EventClass>();
        check::<ParseFlagsError>();
        check::<Notification>();
        check::<Notifications>();
        check::<NotificationChannel<'static>>();
    }
}
