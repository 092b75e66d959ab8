//! The exchange log's cheap envelope reader against the classifier: no panic on any bytes, and on
//! every input the classifier accepts, a peek that answers agrees with it (kind, method, no target).
use mcpgate_codec::envelope::peek;
use mcpgate_codec::jsonrpc::{Classified, Classifier, Target};

/// The target's body: no panic on any input, and the invariants above.
pub fn check(data: &[u8]) {
    let Some(env) = peek(data) else {
        return;
    };
    let Ok(classified) = Classifier::new().classify(data) else {
        return; // the classifier refuses it: the peek may still have read it (module docs)
    };
    let Classified::Single(m) = classified else {
        panic!("peek answered for a batch");
    };
    assert_eq!(m.kind, env.kind);
    assert_eq!(m.method.as_deref(), Some(env.method));
    assert_eq!(m.target, Target::None);
}
