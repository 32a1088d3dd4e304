//! A masked vector looks uniform: a client whose input is all zeros sends bytes whose
//! histogram passes a chi-square test (255 degrees of freedom, p = 0.001 critical value 330.5),
//! while the unmasked input plainly fails it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use flock_protocol::wire::ClientMessage;
use support::{Round, config};

fn chi_square(bytes: &[u8]) -> f64 {
    let mut hist = [0u64; 256];
    for &b in bytes {
        hist[b as usize] += 1;
    }
    let expected = bytes.len() as f64 / 256.0;
    hist.iter()
        .map(|&o| (o as f64 - expected).powi(2) / expected)
        .sum()
}

#[test]
fn masked_zeros_pass_a_chi_square_test() {
    const CRITICAL_255_DOF_P001: f64 = 330.5;
    let d = 65_536u32;
    let (config, ids) = config(8, d, 31);
    let mut round = Round::new(config.clone(), ids, 31);
    for p in &config.participants {
        round.inputs.insert(p.id, vec![0; d as usize]);
    }
    let watched = config.participants[3].id;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    round.tamper_client = Some(Box::new(move |from, msg| {
        if let (true, ClientMessage::MaskedChunk(c)) = (from == watched, msg) {
            sink.borrow_mut().extend_from_slice(&c.words);
        }
    }));
    let out = round.run().unwrap();
    assert!(out.sum.iter().all(|&w| w == 0));
    let bytes = seen.borrow();
    assert_eq!(bytes.len(), d as usize * 4);
    let chi = chi_square(&bytes);
    assert!(chi < CRITICAL_255_DOF_P001, "chi-square {chi:.1}");
    assert!(chi_square(&vec![0u8; bytes.len()]) > CRITICAL_255_DOF_P001);
}
