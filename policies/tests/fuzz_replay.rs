//! Every fuzz target over the policies (ACL JSON, CEL conditions, JWT verification, key parsing,
//! origins, the virtual server's relayed ids and merged lists),
//! run as an ordinary test on its seed corpus and kept crash reproducers: the same code as the
//! fuzz target (`fuzz/checks/<target>.rs`, included here). See `fuzz/checks/replay.rs`.

#[path = "../../fuzz/checks/acl_json.rs"]
mod acl_json;
#[path = "../../fuzz/checks/cel_condition.rs"]
mod cel_condition;
#[path = "../../fuzz/checks/jwk_parse.rs"]
mod jwk_parse;
#[path = "../../fuzz/checks/jwt_verify.rs"]
mod jwt_verify;
#[path = "../../fuzz/checks/origin_relay_ids.rs"]
mod origin_relay_ids;
#[path = "../../fuzz/checks/replay.rs"]
mod replay;
#[path = "../../fuzz/checks/virtual_list_merge.rs"]
mod virtual_list_merge;

use replay::replay;

#[test]
fn acl_json_corpus() {
    replay("acl_json", acl_json::check);
}

#[test]
fn cel_condition_corpus() {
    replay("cel_condition", cel_condition::check);
}

#[test]
fn jwk_parse_corpus() {
    replay("jwk_parse", jwk_parse::check);
}

#[test]
fn jwt_verify_corpus() {
    replay("jwt_verify", jwt_verify::check);
}

#[test]
fn origin_relay_ids_corpus() {
    replay("origin_relay_ids", origin_relay_ids::check);
}

#[test]
fn virtual_list_merge_corpus() {
    replay("virtual_list_merge", virtual_list_merge::check);
}
