//! Replays the committed fuzz corpus (`fuzz/corpus/`) on stable, through the same checks the
//! cargo-fuzz targets run (`stompkit_codec::fuzzing`, `stompkit_session::fuzzing`,
//! `stompkit_testkit::fuzzing`, and `fuzz/drive/client_input.rs`, included below), so every
//! input the fuzzer kept stays a regression test without nightly. See `docs/fuzzing.md`.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use stompkit_codec::{Version, fuzzing};

/// The `client_input` target's body, the very file the fuzz target includes.
#[path = "../../fuzz/drive/client_input.rs"]
mod client_input;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// The files of a target's corpus, sorted by name; fails if it is missing or empty.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_root().join(target);
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|path| {
            let data = fs::read(&path).expect("read corpus file");
            (path, data)
        })
        .collect()
}

/// Runs `check` on every file of the target's corpus, and names every file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let files = corpus(target);
    let mut failures = Vec::new();
    for (path, data) in &files {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| check(data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {target} corpus files fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn decode_corpus_holds_the_decoder_contract() {
    replay("decode", fuzzing::check_stream);
}

#[test]
fn decode_split_corpus_decodes_the_same_however_split() {
    replay("decode_split", fuzzing::check_split_input);
}

#[test]
fn round_trip_corpus_encodes_and_decodes_back() {
    replay("round_trip", fuzzing::check_frame_input);
}

/// The round-trip corpus keeps both outcomes covered: frames the encoder writes, and frames
/// it must refuse.
#[test]
fn round_trip_corpus_has_frames_to_write_and_to_refuse() {
    let (mut written, mut refused) = (0, 0);
    for (_, data) in corpus("round_trip") {
        let input = fuzzing::FrameInput::parse(&data);
        if fuzzing::refusals(input.version, &input.frame).is_empty() {
            written += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        written > 0 && refused > 0,
        "{written} written, {refused} refused"
    );
}

/// The decode corpus keeps both outcomes covered in every version: streams that decode
/// cleanly, and streams that end in an error.
#[test]
fn decode_corpus_has_clean_and_failing_streams() {
    let files = corpus("decode");
    for version in Version::ALL {
        let failing = files
            .iter()
            .filter(|(_, data)| {
                fuzzing::decode_chunked(version, fuzzing::fuzz_limits(), data, &[])
                    .1
                    .is_some()
            })
            .count();
        assert!(
            failing > 0 && failing < files.len(),
            "{version}: {failing} of {} streams fail",
            files.len()
        );
    }
}

#[test]
fn session_corpus_drives_the_session_without_breaking_its_invariants() {
    replay("session", stompkit_session::fuzzing::drive);
}

#[test]
fn broker_corpus_drives_the_broker_core_without_breaking_its_invariants() {
    replay("broker", stompkit_testkit::fuzzing::drive);
}

/// The real tokio client against a scripted broker on loopback, one run per file.
#[test]
fn client_input_corpus_keeps_the_client_within_its_invariants() {
    replay("client_input", client_input::drive);
}

/// Every fuzz target has a corpus directory here, and no other directory hides in
/// `fuzz/corpus/` unreplayed.
#[test]
fn every_corpus_is_replayed() {
    let root = corpus_root();
    let mut names: Vec<String> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", root.display()))
        .map(|entry| {
            let name = entry.expect("corpus entry").file_name();
            name.to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "broker",
            "client_input",
            "decode",
            "decode_split",
            "round_trip",
            "session"
        ]
    );
}
