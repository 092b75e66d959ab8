//! Placeholder until this group lands.
pub fn benches(_c: &mut criterion::Criterion) {}
