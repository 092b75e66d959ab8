//! The client side of one exchange as the engine's I/O sees it: the connection's read and write
//! halves, its read buffer (which may already hold the next pipelined request) and its output
//! buffer, and what the request said about keeping the connection.

/// Borrowed from the connection loop (`super::conn`) for one request.
pub struct Client<'a, R, W> {
    pub rd: &'a mut R,
    pub wr: &'a mut W,
    /// Client read buffer; starts with this request's head until the request is forwarded.
    pub buf: &'a mut Vec<u8>,
    pub out: &'a mut Vec<u8>,
    /// HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
    /// HTTP/1.0: one response per connection, unknown lengths delimited by closing.
    pub http10: bool,
}

/// What the connection does after this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    KeepAlive,
    Close,
}
