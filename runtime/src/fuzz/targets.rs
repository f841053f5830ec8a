//! The fuzz targets, and the generator of their seeds.

use serde::{Deserialize, Serialize};

use super::{corpus_dir, run};
use crate::remote::format;
use crate::remote::format::tests::Shape;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    tags: Vec<String>,
    shape: Option<Shape>,
    samples: Vec<f64>,
    counts: std::collections::BTreeMap<u32, u64>,
}

fn record() -> Record {
    Record {
        name: "seed".into(),
        tags: vec!["a".into(), "λ".into()],
        shape: Some(Shape::Poly(vec![(1, 2), (-3, 4)])),
        samples: vec![0.5, -1.0, f64::INFINITY],
        counts: [(1, 10), (7, 70)].into_iter().collect(),
    }
}

/// Decodes `bytes` as every type the seeds were made of; each answer is `Ok` or `Err`.
fn decode_task_encoding(bytes: &[u8]) {
    let _ = format::decode_seq::<Vec<f64>>(bytes);
    let _ = format::decode_seq::<i64>(bytes);
    let _ = format::decode_seq::<String>(bytes);
    let _ = format::decode_seq::<Option<(u8, String)>>(bytes);
    let _ = format::decode_seq::<Record>(bytes);
    let _ = format::decode::<Vec<Shape>>(bytes);
    let _ = format::decode::<(u64, char, bool)>(bytes);
    let _ = crate::remote::decode_outcome_for_fuzzing::<u64>(bytes);
    let _ = crate::remote::decode_outcome_for_fuzzing::<Record>(bytes);
    if let Ok((_, rest)) = crate::remote::split_kept(bytes) {
        let _ = crate::remote::decode_outcome_for_fuzzing::<u64>(rest);
    }
}

#[test]
fn task_encoding_decoder_never_panics() {
    let ran = run("task-encoding", 0x5eed_0001, decode_task_encoding);
    assert!(ran > 0);
}

#[cfg(unix)]
#[test]
fn worker_frame_decoder_never_panics() {
    use crate::process::fuzz_frames;
    let ran = run("wire", 0x5eed_0002, |bytes| {
        for error in fuzz_frames(bytes) {
            // A frame that cannot be read is a transport error for the call.
            assert!(
                matches!(error, crate::error::Error::Transport { .. }),
                "{error:?}"
            );
        }
    });
    assert!(ran > 0);
}

/// Writes the seed corpus: `cargo test -p parjob --lib write_seed_corpus -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand when a format changes"]
fn write_seed_corpus() {
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let seq = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        f(&mut out);
        out
    };
    write(
        "task-encoding",
        "vectors-of-floats.bin",
        &seq(&|o| format::encode_seq(&[vec![1.5f64, -0.0], vec![], vec![2.0; 5]], o).unwrap()),
    );
    write(
        "task-encoding",
        "integers.bin",
        &seq(&|o| format::encode_seq(&[-3i64, 0, i64::MAX], o).unwrap()),
    );
    write(
        "task-encoding",
        "strings.bin",
        &seq(&|o| format::encode_seq(&["".to_string(), "parjob".into(), "λ".into()], o).unwrap()),
    );
    write(
        "task-encoding",
        "options.bin",
        &seq(&|o| format::encode_seq(&[Some((1u8, "x".to_string())), None], o).unwrap()),
    );
    write(
        "task-encoding",
        "records.bin",
        &seq(&|o| format::encode_seq(&[record()], o).unwrap()),
    );
    write(
        "task-encoding",
        "shapes.bin",
        &seq(&|o| {
            format::encode_into(
                &vec![Shape::Dot, Shape::Circle(2.0), Shape::Rect { w: 1, h: 2 }],
                o,
            )
            .unwrap()
        }),
    );
    write(
        "task-encoding",
        "outcome-done.bin",
        &crate::remote::encode_done_for_fuzzing(vec![1u64, 2, 3]),
    );
    write(
        "task-encoding",
        "outcome-failed.bin",
        &crate::remote::failed(2, crate::remote::FailureKind::Panicked, "boom".into()),
    );
    write(
        "task-encoding",
        "outcome-kept.bin",
        &crate::remote::encode_kept_for_fuzzing(vec![1, 3]),
    );
    #[cfg(unix)]
    for (name, frame) in crate::process::seed_frames() {
        write("wire", &name, &frame);
    }
}
