//! Specs, layouts, initial models, model files and their ids, FedAvg and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use flock_model::fedavg::{ClientUpdate, fedavg, weighted_mean};
use flock_model::file::{decode, encode, load, load_verified, save};
use flock_model::metrics::Evaluation;
use flock_model::{ModelError, ModelId, ModelSpec, Params};
use proptest::prelude::*;

fn tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flock-model-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn layouts_list_burn_shapes_in_order() {
    let mlp = ModelSpec::default_mlp(30, 2).layout().unwrap();
    let names: Vec<_> = mlp
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.shape.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("layers.0.weight", vec![30, 32]),
            ("layers.0.bias", vec![32]),
            ("layers.1.weight", vec![32, 2]),
            ("layers.1.bias", vec![2]),
        ]
    );
    assert_eq!(mlp.num_params(), 30 * 32 + 32 + 32 * 2 + 2);

    let cnn = ModelSpec::digits_cnn().layout().unwrap();
    let shapes: Vec<_> = cnn.tensors().iter().map(|t| t.shape.clone()).collect();
    assert_eq!(
        shapes,
        [
            vec![16, 1, 3, 3],
            vec![16],
            vec![32, 16, 3, 3],
            vec![32],
            vec![32 * 4 * 4, 64],
            vec![64],
            vec![64, 10],
            vec![10],
        ]
    );
    // Offsets tile the flat vector without gaps.
    let mut next = 0;
    for t in cnn.tensors() {
        assert_eq!(t.offset, next, "{}", t.name);
        next += t.len();
    }
    assert_eq!(next, cnn.num_params());
}

#[test]
fn invalid_specs_say_what_is_wrong() {
    let cases = [
        (
            ModelSpec::Mlp {
                inputs: 0,
                hidden: vec![4],
                classes: 2,
            },
            "inputs is 0",
        ),
        (
            ModelSpec::Mlp {
                inputs: 3,
                hidden: vec![4, 0],
                classes: 2,
            },
            "hidden[1] is 0",
        ),
        (
            ModelSpec::Mlp {
                inputs: 3,
                hidden: vec![],
                classes: 1,
            },
            "at least 2",
        ),
        (
            ModelSpec::Cnn {
                height: 1,
                width: 8,
                channels: vec![4],
                hidden: 8,
                classes: 2,
            },
            "at least 2x2",
        ),
        (
            ModelSpec::Cnn {
                height: 8,
                width: 8,
                channels: vec![],
                hidden: 8,
                classes: 2,
            },
            "channels is empty",
        ),
        (
            ModelSpec::Mlp {
                inputs: usize::MAX / 2,
                hidden: vec![4],
                classes: 2,
            },
            "too large",
        ),
        (
            ModelSpec::Mlp {
                inputs: 1 << 20,
                hidden: vec![1 << 10, 1 << 10],
                classes: 2,
            },
            "parameters",
        ),
    ];
    for (spec, needle) in cases {
        let err = spec.layout().unwrap_err().to_string();
        assert!(err.contains(needle), "{spec:?}: {err}");
    }
}

#[test]
fn spec_parses_from_toml_style_json_and_refuses_unknown_keys() {
    let spec: ModelSpec =
        serde_json::from_str(r#"{"kind":"mlp","inputs":30,"hidden":[32],"classes":2}"#).unwrap();
    assert_eq!(spec, ModelSpec::default_mlp(30, 2));
    let err =
        serde_json::from_str::<ModelSpec>(r#"{"kind":"mlp","inputs":30,"hiden":[32],"classes":2}"#)
            .unwrap_err()
            .to_string();
    assert!(err.contains("hiden"), "{err}");
    let err = serde_json::from_str::<ModelSpec>(r#"{"kind":"rnn"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rnn"), "{err}");
}

#[test]
fn init_is_deterministic_bounded_and_seed_dependent() {
    let spec = ModelSpec::digits_cnn();
    let a = Params::init(&spec, 7).unwrap();
    let b = Params::init(&spec, 7).unwrap();
    let c = Params::init(&spec, 8).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let layout = spec.layout().unwrap();
    for t in layout.tensors() {
        let bound = 1.0 / (t.fan_in as f32).sqrt();
        let values = &a.values()[t.offset..t.offset + t.len()];
        assert!(values.iter().all(|v| v.abs() <= bound), "{}", t.name);
        // Not degenerate: spread over most of the range.
        let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.5 * bound, "{}", t.name);
    }
}

#[test]
fn model_file_round_trips_and_its_id_is_stable() {
    let dir = tmpdir("roundtrip");
    let params = Params::init(&ModelSpec::digits_cnn(), 1).unwrap();
    let path = dir.join("m.safetensors");
    let id = save(&path, &params).unwrap();
    let (back, id2) = load(&path).unwrap();
    assert_eq!(back, params);
    assert_eq!(id, id2);
    assert_eq!(
        id,
        encode(&params).unwrap().1,
        "same parameters, same bytes, same id"
    );
    assert_eq!(id, ModelId::of(&std::fs::read(&path).unwrap()));
    assert_eq!(load_verified(&path, &id).unwrap(), params);
    // The id parses back from its hex form.
    assert_eq!(id.to_string().parse::<ModelId>().unwrap(), id);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let other = Params::init(&ModelSpec::digits_cnn(), 2).unwrap();
    let err = load_verified(&path, &encode(&other).unwrap().1).unwrap_err();
    assert!(matches!(err, ModelError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("m.safetensors"), "{err}");
}

fn tensors_file(
    spec_json: Option<&str>,
    tensors: &[(&str, Vec<usize>, safetensors::Dtype)],
) -> Vec<u8> {
    let datas: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape, dtype)| vec![0u8; shape.iter().product::<usize>() * dtype.bitsize() / 8])
        .collect();
    let views: Vec<_> = tensors
        .iter()
        .zip(&datas)
        .map(|((name, shape, dtype), data)| {
            (
                name.to_string(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let meta = spec_json.map(|s| [("flock.model_spec".to_string(), s.to_string())].into());
    safetensors::serialize(views, meta).unwrap()
}

#[test]
fn bad_model_files_are_refused_with_the_reason() {
    use safetensors::Dtype::{F16, F32};
    let spec = r#"{"kind":"mlp","inputs":2,"hidden":[],"classes":2}"#;
    let good = [
        ("layers.0.weight", vec![2, 2], F32),
        ("layers.0.bias", vec![2], F32),
    ];
    let origin = Path::new("peer.safetensors");
    assert!(decode(&tensors_file(Some(spec), &good), origin).is_ok());

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not a model".to_vec(), "not safetensors"),
        (tensors_file(None, &good), "not a flock model"),
        (
            tensors_file(Some(r#"{"kind":"mlp"}"#), &good),
            "not a model spec",
        ),
        (tensors_file(Some(spec), &good[..1]), "1 tensors"),
        (
            tensors_file(
                Some(spec),
                &[good[0].clone(), ("layers.0.bias", vec![3], F32)],
            ),
            "has shape [3]",
        ),
        (
            tensors_file(
                Some(spec),
                &[good[0].clone(), ("layers.0.bias", vec![2], F16)],
            ),
            "expected F32",
        ),
        (
            tensors_file(
                Some(spec),
                &[good[0].clone(), ("layers.9.bias", vec![2], F32)],
            ),
            "layers.0.bias is missing",
        ),
    ];
    for (bytes, needle) in cases {
        let err = decode(&bytes, origin).unwrap_err().to_string();
        assert!(
            err.contains(needle) && err.contains("peer.safetensors"),
            "{needle}: {err}"
        );
    }
    let err = load(Path::new("/nonexistent/m.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/m.safetensors"), "{err}");
}

#[test]
fn fedavg_weights_by_samples() {
    let spec = ModelSpec::Mlp {
        inputs: 1,
        hidden: vec![],
        classes: 2,
    };
    let global = Params::new(spec, vec![1.0, 1.0, 0.0, 0.0]).unwrap();
    let updates = [
        ClientUpdate {
            delta: vec![1.0, 0.0, 0.0, 4.0],
            samples: 1,
        },
        ClientUpdate {
            delta: vec![0.0, 0.0, 0.0, 0.0],
            samples: 3,
        },
    ];
    assert_eq!(weighted_mean(&updates).unwrap(), vec![0.25, 0.0, 0.0, 1.0]);
    assert_eq!(
        fedavg(&global, &updates).unwrap().values(),
        &[1.25, 1.0, 0.0, 1.0]
    );

    let err = weighted_mean(&[]).unwrap_err().to_string();
    assert!(err.contains("no updates"), "{err}");
    let zero = [ClientUpdate {
        delta: vec![1.0],
        samples: 0,
    }];
    assert!(
        weighted_mean(&zero)
            .unwrap_err()
            .to_string()
            .contains("0 samples")
    );
    let ragged = [
        updates[0].clone(),
        ClientUpdate {
            delta: vec![1.0],
            samples: 1,
        },
    ];
    assert!(
        weighted_mean(&ragged)
            .unwrap_err()
            .to_string()
            .contains("update 1 has 1 values")
    );
    assert!(matches!(
        fedavg(
            &global,
            &[ClientUpdate {
                delta: vec![1.0],
                samples: 1
            }]
        ),
        Err(ModelError::WrongLength {
            expected: 4,
            got: 1
        })
    ));
}

#[test]
fn metrics_from_a_known_confusion() {
    // labels 0,0,1,1,2 ; predictions 0,1,1,1,0
    let e = Evaluation::from_predictions(3, &[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], 5.0);
    assert_eq!(e.samples, 5);
    assert!((e.accuracy - 0.6).abs() < 1e-12);
    assert!((e.loss - 1.0).abs() < 1e-12);
    assert_eq!(
        e.confusion,
        vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
    );
    // class 0: tp 1, predicted 2, actual 2 → 0.5; class 1: tp 2, predicted 3, actual 2 → 0.8;
    // class 2: tp 0 → 0.
    let expected = [0.5, 0.8, 0.0];
    for (got, want) in e.f1.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{:?}", e.f1);
    }
    assert!((e.macro_f1() - 1.3 / 3.0).abs() < 1e-12);
}

proptest! {
    #[test]
    fn any_mlp_round_trips_through_a_file(
        inputs in 1usize..20, hidden in proptest::collection::vec(1usize..12, 0..3),
        classes in 2usize..6, seed in any::<u64>(),
    ) {
        let spec = ModelSpec::Mlp { inputs, hidden, classes };
        let params = Params::init(&spec, seed).unwrap();
        let (bytes, id) = encode(&params).unwrap();
        prop_assert_eq!(ModelId::of(&bytes), id);
        prop_assert_eq!(decode(&bytes, Path::new("x")).unwrap(), params);
    }
}
