//! Owned-buffer I/O helpers over monoio's rent-style traits: append reads into a `Vec`'s spare
//! capacity, write a whole buffer, and both bounded by a timeout — on the request path by the
//! connection's slot of the worker's deadline table (`*_by`, `super::deadlines`), elsewhere by a
//! monoio timer.

use std::io;
use std::pin::pin;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::deadlines::Deadline;

/// Spare capacity guaranteed before each read.
pub const READ_CHUNK: usize = 16 * 1024;

/// Spare capacity before each read of a long-lived event stream. Such streams are many and mostly
/// quiet, and a pending read holds its buffer; bursts still grow it geometrically.
pub const IDLE_STREAM_CHUNK: usize = 1024;

#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Timeout,
}

/// Moves `buf`'s bytes into a fresh buffer with `spare` room if it holds much more than that.
/// A new allocation rather than an in-place shrink: the big buffer goes back whole, ready for
/// the next connection's, instead of leaving a split remainder that fragments the heap.
pub fn shrink_for_idle(buf: &mut Vec<u8>, spare: usize) {
    if buf.capacity() > buf.len() + 2 * spare {
        let mut small = Vec::with_capacity(buf.len() + spare);
        small.extend_from_slice(buf);
        *buf = small;
    }
}

/// Appends one read to `buf`. Ok(0) is end of stream. On timeout the buffer is lost with the
/// dropped read (the caller closes the connection anyway) and comes back empty.
pub async fn read_more<R: AsyncReadRent>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<usize, ReadError> {
    read_more_reserving(r, buf, limit, READ_CHUNK).await
}

/// [`read_more`] with `chunk` instead of [`READ_CHUNK`] as the spare capacity to ensure.
pub async fn read_more_reserving<R: AsyncReadRent>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: Duration,
    chunk: usize,
) -> Result<usize, ReadError> {
    match monoio::time::timeout(limit, read_reserving(r, buf, chunk)).await {
        Ok(res) => res.map_err(ReadError::Io),
        Err(_) => Err(ReadError::Timeout),
    }
}

/// [`read_more`] bounded by the instant `at` on the connection's `deadline` slot instead of a
/// monoio timer. On timeout the buffer is lost with the dropped read (as [`read_more`]).
pub async fn read_more_until<R: AsyncReadRent>(
    r: &mut R,
    buf: &mut Vec<u8>,
    deadline: &Deadline,
    at: Instant,
) -> Result<usize, ReadError> {
    match deadline
        .until(at, pin!(read_reserving(r, buf, READ_CHUNK)))
        .await
    {
        Some(res) => res.map_err(ReadError::Io),
        None => Err(ReadError::Timeout),
    }
}

/// [`read_more`] bounded by `limit` on the connection's `deadline` slot.
pub async fn read_more_by<R: AsyncReadRent>(
    r: &mut R,
    buf: &mut Vec<u8>,
    deadline: &Deadline,
    limit: Duration,
) -> Result<usize, ReadError> {
    read_more_until(r, buf, deadline, Instant::now() + limit).await
}

/// One read appended to `buf` with at least `chunk / 4` spare (`chunk` reserved when less), not
/// bounded by time. If the future is dropped before it completes, the buffer comes back empty.
pub async fn read_reserving<R: AsyncReadRent>(
    r: &mut R,
    buf: &mut Vec<u8>,
    chunk: usize,
) -> io::Result<usize> {
    let mut owned = std::mem::take(buf);
    if owned.capacity() - owned.len() < chunk / 4 {
        owned.reserve(chunk);
    }
    let len = owned.len();
    let cap = owned.capacity();
    let (res, slice) = r.read(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res
}

/// Writes all of `buf` and hands it back cleared (capacity kept).
pub async fn write_all<W: AsyncWriteRent>(w: &mut W, buf: &mut Vec<u8>) -> io::Result<()> {
    let owned = std::mem::take(buf);
    let (res, mut owned) = w.write_all(owned).await;
    owned.clear();
    *buf = owned;
    res.map(|_| ())
}

/// Writes `buf[range]` (no copy) and hands the buffer back untouched.
pub async fn write_range<W: AsyncWriteRent>(
    w: &mut W,
    buf: &mut Vec<u8>,
    range: std::ops::Range<usize>,
) -> io::Result<()> {
    use monoio::buf::IoBuf;
    if range.is_empty() {
        return Ok(());
    }
    if range.start > range.end || range.end > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "write range outside the buffer",
        ));
    }
    let owned = std::mem::take(buf);
    let (res, slice) = w.write_all(owned.slice(range)).await;
    *buf = slice.into_inner();
    res.map(|_| ())
}

/// [`write_all`] bounded by `limit`: a client that stops reading must not hold a worker's
/// upstream connection forever. On timeout the buffer is lost with the dropped write.
pub async fn write_all_within<W: AsyncWriteRent>(
    w: &mut W,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> io::Result<()> {
    match monoio::time::timeout(limit, write_all(w, buf)).await {
        Ok(res) => res,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// [`write_all_within`] bounded on the connection's `deadline` slot instead of a monoio timer.
pub async fn write_all_by<W: AsyncWriteRent>(
    w: &mut W,
    buf: &mut Vec<u8>,
    deadline: &Deadline,
    limit: Duration,
) -> io::Result<()> {
    match deadline.within(limit, pin!(write_all(w, buf))).await {
        Some(res) => res,
        None => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// [`write_range`] bounded by `limit` on the connection's `deadline` slot (a client that stops
/// reading). On timeout the buffer is lost with the dropped write (the connection is closed
/// anyway) and comes back empty.
pub async fn write_range_by<W: AsyncWriteRent>(
    w: &mut W,
    buf: &mut Vec<u8>,
    range: std::ops::Range<usize>,
    deadline: &Deadline,
    limit: Duration,
) -> io::Result<()> {
    match deadline
        .within(limit, pin!(write_range(w, buf, range)))
        .await
    {
        Some(res) => res,
        None => Err(io::ErrorKind::TimedOut.into()),
    }
}
