//! Data sources: every kind of bad data is an error naming file, line and column; splits are
//! stratified and seeded; standardisation uses training statistics only; Dirichlet partitions
//! cover every sample once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use flock_agent::data::partition::{dirichlet, write_partitions};
use flock_agent::data::{CsvSource, DataSource, Dataset, FeatureMoments, Standardizer, split};

fn temp_csv(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flock-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn load_err(name: &str, content: &str, classes: usize) -> String {
    let path = temp_csv(name, content);
    let err = CsvSource::new(&path, "label")
        .load(classes)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "no file name in: {err}"
    );
    err
}

#[test]
fn a_good_file_loads_with_the_label_anywhere() {
    let path = temp_csv("good.csv", "a,label,b\n1,0,2\n 3.5 ,1,-4e2\n");
    let data = CsvSource::new(&path, "label").load(2).unwrap();
    assert_eq!(data.features(), 2);
    assert_eq!(data.labels(), &[0, 1]);
    assert_eq!(data.values(), &[1.0, 2.0, 3.5, -400.0]);
}

#[test]
fn each_kind_of_bad_data_names_where_it_is() {
    let cases: [(&str, &str, usize, &[&str]); 9] = [
        (
            "ragged.csv",
            "a,b,label\n1,2,0\n1,2\n",
            2,
            &[":3:", "2 cells, the header has 3"],
        ),
        (
            "text.csv",
            "a,b,label\n1,2,0\n1,abc,1\n",
            2,
            &[":3:", "column 2 (b)", "\"abc\"", "not a number"],
        ),
        (
            "empty-cell.csv",
            "a,b,label\n1,,0\n",
            2,
            &[":2:", "column 2 (b)", "not a number"],
        ),
        (
            "nan.csv",
            "a,b,label\n1,2,0\nNaN,2,1\n",
            2,
            &[":3:", "column 1 (a)", "NaN"],
        ),
        (
            "inf.csv",
            "a,b,label\ninf,2,0\n",
            2,
            &[":2:", "column 1 (a)", "infinities"],
        ),
        (
            "nolabel.csv",
            "a,b,target\n1,2,0\n",
            2,
            &["no column \"label\"", "a, b, target"],
        ),
        ("empty.csv", "", 2, &["empty"]),
        ("header-only.csv", "a,b,label\n", 2, &["no data rows"]),
        (
            "class.csv",
            "a,b,label\n1,2,0\n1,2,7\n",
            2,
            &[":3:", "label \"7\"", "(0..2)"],
        ),
    ];
    for (name, content, classes, needles) in cases {
        let err = load_err(name, content, classes);
        for needle in needles {
            assert!(err.contains(needle), "{name}: {needle:?} not in: {err}");
        }
    }
    let err = load_err("neg.csv", "a,label\n1,-1\n", 2);
    assert!(err.contains("label \"-1\""), "{err}");
    let missing = CsvSource::new("/nonexistent/data.csv", "label")
        .load(2)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/data.csv"), "{missing}");
}

#[test]
fn in_memory_samples_are_a_source_and_checked_too() {
    let data = Dataset::new(vec![0.0, 1.0, 2.0], vec![0, 1, 3], 1).unwrap();
    let err = data.load(3).unwrap_err().to_string();
    assert!(err.contains("label \"3\""), "{err}");
    assert_eq!(data.load(4).unwrap(), data);
    assert!(
        Dataset::new(vec![0.0; 3], vec![0, 1], 2).is_none(),
        "3 values are not 2 rows of 2"
    );
}

#[test]
fn splits_are_stratified_seeded_and_disjoint() {
    let labels: Vec<u32> = (0..100).map(|i| u32::from(i % 4 == 0)).collect(); // 25 % class 1
    let values: Vec<f32> = (0..100).map(|i| i as f32).collect();
    let data = Dataset::new(values, labels, 1).unwrap();
    let (train, val) = split(&data, 2, 0.2, 7).unwrap();
    assert_eq!((train.len(), val.len()), (80, 20));
    assert_eq!(
        val.labels().iter().filter(|&&l| l == 1).count(),
        5,
        "class balance kept"
    );
    let mut all: Vec<f32> = train.values().iter().chain(val.values()).copied().collect();
    all.sort_by(f32::total_cmp);
    assert_eq!(
        all,
        (0..100).map(|i| i as f32).collect::<Vec<_>>(),
        "each sample once"
    );
    assert_eq!(
        split(&data, 2, 0.2, 7).unwrap(),
        (train.clone(), val.clone())
    );
    assert_ne!(split(&data, 2, 0.2, 8).unwrap().1, val);
    assert!(
        split(&data, 2, 1.0, 7)
            .unwrap_err()
            .to_string()
            .contains("not in [0, 1)")
    );
}

#[test]
fn standardisation_uses_the_fitting_data_and_moments_add_up() {
    let train = Dataset::new(vec![1.0, 10.0, 3.0, 10.0], vec![0, 1], 2).unwrap();
    let scaler = Standardizer::fit(&train);
    assert_eq!(scaler.mean, vec![2.0, 10.0]);
    assert_eq!(scaler.std, vec![1.0, 1.0], "constant feature keeps scale 1");
    let mut test = Dataset::new(vec![5.0, 12.0], vec![0], 2).unwrap();
    scaler.apply(&mut test).unwrap();
    assert_eq!(test.values(), &[3.0, 2.0]);

    // Two halves' moments summed = the whole's.
    let other = Dataset::new(vec![5.0, 0.0, 7.0, 2.0], vec![0, 1], 2).unwrap();
    let mut moments = FeatureMoments::of(&train);
    moments.merge(&FeatureMoments::of(&other)).unwrap();
    let whole = Dataset::new(
        vec![1.0, 10.0, 3.0, 10.0, 5.0, 0.0, 7.0, 2.0],
        vec![0, 1, 0, 1],
        2,
    )
    .unwrap();
    assert_eq!(moments.standardizer(), Standardizer::fit(&whole));
    let narrow = FeatureMoments::of(&Dataset::new(vec![1.0], vec![0], 1).unwrap());
    assert!(moments.merge(&narrow).is_err());
}

#[test]
fn dirichlet_partitions_cover_every_sample_once_and_skew_with_small_alpha() {
    let labels: Vec<u32> = (0..1000).map(|i| (i % 10) as u32).collect();
    let parts = dirichlet(&labels, 10, 5, 0.5, 20, 3).unwrap();
    let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert!(parts.iter().all(|p| p.len() >= 20));
    assert_eq!(
        parts,
        dirichlet(&labels, 10, 5, 0.5, 20, 3).unwrap(),
        "seeded"
    );

    // Skew: the largest class share per client, averaged, is far above the IID 0.1 at α = 0.5
    // and close to it at α = 1000.
    let skew = |alpha: f64| {
        let parts = dirichlet(&labels, 10, 5, alpha, 1, 9).unwrap();
        parts
            .iter()
            .map(|p| {
                let mut counts = [0usize; 10];
                p.iter().for_each(|&i| counts[labels[i] as usize] += 1);
                *counts.iter().max().unwrap() as f64 / p.len() as f64
            })
            .sum::<f64>()
            / 5.0
    };
    assert!(skew(0.5) > 0.25, "α=0.5: {}", skew(0.5));
    assert!(skew(1000.0) < 0.15, "α=1000: {}", skew(1000.0));

    assert!(
        dirichlet(&labels, 10, 5, 0.0, 1, 1)
            .unwrap_err()
            .to_string()
            .contains("alpha")
    );
    assert!(
        dirichlet(&labels, 10, 200, 0.5, 10, 1)
            .unwrap_err()
            .to_string()
            .contains("cannot give")
    );
}

#[test]
fn partition_files_hold_the_rows_verbatim() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/data/breast_cancer.csv");
    let out = std::env::temp_dir().join(format!("flock-parts-{}", std::process::id()));
    let files = write_partitions(&CsvSource::new(&src, "label"), 2, 4, 0.5, 20, 1, &out).unwrap();
    assert_eq!(files.len(), 4);
    assert_eq!(files.iter().map(|f| f.samples()).sum::<usize>(), 569);
    let original: std::collections::BTreeSet<String> = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    let header = std::fs::read_to_string(&src)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(&f.path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), header);
        for line in lines {
            assert!(original.contains(line), "{line} is not a row of the source");
            seen += 1;
        }
        let loaded = CsvSource::new(&f.path, "label").load(2).unwrap();
        assert_eq!(loaded.len(), f.samples());
    }
    assert_eq!(seen, 569);
}
