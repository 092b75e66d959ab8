//! Chunked decoding on arbitrary bytes. The first two bytes pick a split point. Invariants: no
//! panic, consumed <= input, data ranges inside the input, and decoding in two pieces (keeping the
//! unconsumed rest, as the engine does) gives the same data, outcome and end as decoding whole.
use mcpgate_codec::http::ChunkedDecoder;

/// (data, ok, done, consumed)
fn decode(input: &[u8], split: usize) -> (Vec<u8>, bool, bool, usize) {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut pending = Vec::new();
    let mut total_consumed = 0;
    for piece in [&input[..split], &input[split..]] {
        pending.extend_from_slice(piece);
        let result = decoder.decode(&pending, |r| {
            assert!(r.start <= r.end && r.end <= pending.len());
            data.extend_from_slice(&pending[r]);
        });
        match result {
            Ok(consumed) => {
                assert!(consumed <= pending.len());
                total_consumed += consumed;
                pending.drain(..consumed);
            }
            Err(_) => return (data, false, false, total_consumed),
        }
        if decoder.is_done() {
            break;
        }
    }
    (data, true, decoder.is_done(), total_consumed)
}

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let split_seed = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let input = &data[2..];
    let split = split_seed % (input.len() + 1);
    let whole = decode(input, input.len());
    let halves = decode(input, split);
    assert!(whole.3 <= input.len());
    assert_eq!(whole.1, halves.1, "outcome differs with split at {split}");
    if whole.1 {
        assert_eq!(whole, halves, "split at {split}");
    }
}
