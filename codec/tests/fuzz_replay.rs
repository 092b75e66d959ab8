//! Every fuzz target over the codec, run as an ordinary test on its seed corpus
//! (`fuzz/corpus/<target>/`, plus whatever a local fuzzing run added there) and on the crash
//! reproducers kept in `fuzz/regressions/<target>/`: the same code as the fuzz target (its body is
//! `fuzz/checks/<target>.rs`, included here), so a fixed crash stays fixed without cargo-fuzz.

#[path = "../../fuzz/checks/chunked_decoder.rs"]
mod chunked_decoder;
#[path = "../../fuzz/checks/envelope_peek.rs"]
mod envelope_peek;
#[path = "../../fuzz/checks/head_writer.rs"]
mod head_writer;
#[path = "../../fuzz/checks/http_request_head.rs"]
mod http_request_head;
#[path = "../../fuzz/checks/http_response_framing.rs"]
mod http_response_framing;
#[path = "../../fuzz/checks/jsonrpc_classify.rs"]
mod jsonrpc_classify;
#[path = "../../fuzz/checks/list_filter.rs"]
mod list_filter;
#[path = "../../fuzz/checks/replay.rs"]
mod replay;
#[path = "../../fuzz/checks/sse_parser.rs"]
mod sse_parser;

use replay::replay;

#[test]
fn chunked_decoder_corpus() {
    replay("chunked_decoder", chunked_decoder::check);
}

#[test]
fn envelope_peek_corpus() {
    replay("envelope_peek", envelope_peek::check);
}

#[test]
fn head_writer_corpus() {
    replay("head_writer", head_writer::check);
}

#[test]
fn http_request_head_corpus() {
    replay("http_request_head", http_request_head::check);
}

#[test]
fn http_response_framing_corpus() {
    replay("http_response_framing", http_response_framing::check);
}

#[test]
fn jsonrpc_classify_corpus() {
    replay("jsonrpc_classify", jsonrpc_classify::check);
}

#[test]
fn list_filter_corpus() {
    replay("list_filter", list_filter::check);
}

#[test]
fn sse_parser_corpus() {
    replay("sse_parser", sse_parser::check);
}
