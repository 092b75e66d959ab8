//! The exchange log's per-worker state for one API under one configuration snapshot: its name
//! and upstream labels, interned on the first record rather than on every one (owned by
//! `snapshot::ApiState`, so a reload interns afresh).

use std::cell::RefCell;

use crate::observe::Label;

#[derive(Default)]
pub struct ObserveApiState {
    /// (API name, upstream URL) labels.
    pub labels: RefCell<Option<(Label, Label)>>,
}
