//! The virtual server's merged list, without the network: three upstreams' `tools/list`
//! results (15 tools each, shaped like real servers') merged by bytes
//! (`mcpgate_policies::merged_list::ListMerge::add_raw`) against the `Value` merge it replaced
//! (each result parsed into a `serde_json::Value`, entries moved and the merged list serialised,
//! which is `ListMerge::add_value`). `cargo bench -p mcpgate-bench --bench virtual_list`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mcpgate_codec::filter::ListKind;
use mcpgate_policies::merged_list::ListMerge;
use mcpgate_policies::virtual_server::Naming;
use serde_json::Value;

/// One upstream's `result` of `n` tools.
fn tools_result(n: usize) -> Vec<u8> {
    let mut s = String::from(r#"{"tools":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"name":"tool_{i:03}","description":"Looks up item {i} in the catalogue and returns its \"current\" state as structured content.","inputSchema":{{"type":"object","properties":{{"query":{{"type":"string","description":"What to look for"}},"limit":{{"type":"integer","minimum":1,"maximum":100}}}},"required":["query"]}}}}"#
        ));
    }
    s.push_str(r#"],"nextCursor":"page-2"}"#);
    s.into_bytes()
}

fn benches(c: &mut Criterion) {
    let naming = Naming {
        upstreams: vec!["a".into(), "b".into(), "s".into()],
        separator: "__".into(),
    };
    let results: Vec<Vec<u8>> = (0..3).map(|_| tools_result(15)).collect();
    let bytes: usize = results.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("virtual_list");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("merge_3x15_bytes", |b| {
        b.iter(|| {
            let mut merge = ListMerge::new(&naming, ListKind::Tools);
            for (i, r) in results.iter().enumerate() {
                let _ = merge.add_raw(i, black_box(r), &mut |_| {});
            }
            black_box(merge.finish())
        })
    });
    g.bench_function("merge_3x15_value", |b| {
        b.iter(|| {
            let mut merge = ListMerge::new(&naming, ListKind::Tools);
            for (i, r) in results.iter().enumerate() {
                let v: Value = serde_json::from_slice(black_box(r)).unwrap_or_default();
                merge.add_value(i, v, &mut |_| {});
            }
            black_box(merge.finish())
        })
    });
    g.finish();
}

criterion_group!(virtual_list, benches);
criterion_main!(virtual_list);
