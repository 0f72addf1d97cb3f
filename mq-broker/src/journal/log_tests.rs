//! Unit tests of `log.rs`'s helpers.
use super::*;
use crate::journal::recover::{base_state, BaseState};

fn segment(records: &[Record]) -> Vec<u8> {
    let mut data = MAGIC.to_vec();
    for r in records {
        r.encode(&mut data);
    }
    data
}

#[test]
fn a_base_starts_with_base_and_is_complete_only_with_its_end() {
    let b = Record::Batch { epoch: 1 };
    let land = Record::Land {
        id: mq_protocol::MessageId::new(1, 1),
        topic: "t".into(),
        headers: Default::default(),
        payload: Default::default(),
    };
    let complete = segment(&[b.clone(), Record::Base, land.clone(), Record::BaseEnd]);
    assert!(matches!(base_state(&complete), BaseState::Complete));
    let torn = segment(&[b.clone(), Record::Base, land.clone()]);
    assert!(matches!(base_state(&torn), BaseState::Torn));
    // An end without its start, or a base that is not first, is no base.
    let end_first = segment(&[b.clone(), Record::BaseEnd]);
    assert!(matches!(base_state(&end_first), BaseState::NotBase));
    let late = segment(&[b.clone(), land, Record::Base, Record::BaseEnd]);
    assert!(matches!(base_state(&late), BaseState::NotBase));
    assert!(matches!(base_state(&segment(&[b])), BaseState::NotBase));
}

#[test]
fn debug_shows_the_shape_not_the_data() {
    let disk = super::super::sim::SimDisk::default();
    let opts = LogOptions {
        segment_size: 4096,
        repair: false,
        prezero: 1024,
    };
    let (log, _) = Log::open(Box::new(disk), opts, |_| {}).expect("open");
    let text = format!("{log:?}");
    assert!(
        text.contains("segments: 1") && text.contains("epoch: 1"),
        "{text}"
    );
}
