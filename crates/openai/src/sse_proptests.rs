//! Property tests of the server-sent-event parser. An upstream's bytes arrive in reads of any
//! size, split anywhere (inside a `\r\n`, inside a multi-byte UTF-8 character, inside
//! `data:`), and may be anything at all; the parser must never panic, must give the same events
//! however the bytes are split, and must give back exactly the payloads of a well-formed stream.

#![allow(clippy::unwrap_used)]

use inferd_testkit::{config, re};
use proptest::prelude::*;

use super::*;

/// Feeds `bytes` in pieces ending at `cuts` (sorted, deduplicated, any in range), then ends.
fn feed(bytes: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let cut = cut.clamp(start, bytes.len());
        events.extend(parser.push(&bytes[start..cut]));
        start = cut;
    }
    events.extend(parser.finish());
    // Finishing again gives nothing more.
    assert_eq!(parser.finish(), None);
    events
}

/// Split points: random ones, every byte, and the awkward ones (between `\r` and `\n`, inside a
/// multi-byte character, inside `data:`).
fn cuts_for(bytes: &[u8], random: &[prop::sample::Index], mode: u8) -> Vec<usize> {
    let mut cuts: Vec<usize> = match mode {
        0 => (1..bytes.len()).collect(),
        1 => (1..bytes.len())
            .filter(|&i| {
                (bytes[i - 1] == b'\r' && bytes[i] == b'\n')
                    || (bytes[i] & 0xC0 == 0x80)
                    || bytes[i - 1] == b':'
                    || bytes[i - 1] == b'd'
            })
            .collect(),
        _ => Vec::new(),
    };
    cuts.extend(random.iter().map(|i| i.index(bytes.len() + 1)));
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Pieces SSE streams are made of, and bytes that are not.
fn sse_piece() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "data:", "data: ", "data", "\n", "\r\n", "\r", "\n\n", ":", ": keep-alive\n",
            "event: x\n", "id: 1\n", "retry: 5\n", "[DONE]", "{\"a\":1}", "é", "€", "😀", " ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
        // Truncated and invalid UTF-8.
        1 => prop::sample::select(vec![
            b"\xe2\x82".to_vec(),
            b"\xf0\x9f".to_vec(),
            b"\xff".to_vec(),
            b"\xc0\x80".to_vec(),
            b"\xed\xa0\x80".to_vec(),
        ]),
        1 => re("\\PC{0,8}").prop_map(String::into_bytes),
    ]
    .boxed()
}

fn any_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(sse_piece(), 0..40).prop_map(|pieces| pieces.concat())
}

/// One line of an event's data: any text but line breaks (SSE cannot carry them in a line).
fn data_line() -> BoxedStrategy<String> {
    prop_oneof![
        3 => re("[^\r\n]{0,24}"),
        1 => re("[ :a-z]{0,6}"),
        1 => Just(String::new()),
        // A chat chunk.
        1 => re(r#"\{"choices":\[\{"delta":\{"content":"[^"\\\r\n]{0,12}"\}\}\]\}"#),
    ]
    .boxed()
}

/// What may come between events: comments and fields other than `data`.
fn noise_line() -> BoxedStrategy<String> {
    prop_oneof![re(":[^\r\n]{0,12}"), re("(event|id|retry): ?[a-z0-9]{0,6}"),].boxed()
}

#[derive(Debug, Clone)]
struct Event {
    /// The lines of the payload (joined with `\n` it is the payload).
    lines: Vec<String>,
    /// Comments and other fields written before the data.
    noise: Vec<String>,
    /// Whether each data line is written `data:` + line (when it has no leading space) or
    /// `data: ` + line.
    tight: bool,
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop::collection::vec(data_line(), 1..4),
        prop::collection::vec(noise_line(), 0..2),
        any::<bool>(),
    )
        .prop_map(|(lines, noise, tight)| Event {
            lines,
            noise,
            tight,
        })
}

/// A well-formed stream of `events`, lines ended by `\n` or `\r\n` as `crlf` says, and whether
/// the last event's closing blank line is left out (the stream just ends).
fn encode(events: &[Event], crlf: &[bool], open_end: bool) -> Vec<u8> {
    let mut out = String::new();
    let mut eol = crlf.iter().copied().cycle();
    let mut end = |out: &mut String| {
        out.push_str(if eol.next().unwrap_or(false) {
            "\r\n"
        } else {
            "\n"
        })
    };
    for (i, e) in events.iter().enumerate() {
        for n in &e.noise {
            out.push_str(n);
            end(&mut out);
        }
        for line in &e.lines {
            if e.tight && !line.starts_with(' ') {
                out.push_str("data:");
            } else {
                out.push_str("data: ");
            }
            out.push_str(line);
            end(&mut out);
        }
        if !(open_end && i + 1 == events.len()) {
            end(&mut out);
        }
    }
    out.into_bytes()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_split_anywhere_give_the_events_of_the_whole(
        bytes in any_stream(),
        random in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        mode in 0..3u8,
    ) {
        let whole = feed(&bytes, &[]);
        let split = feed(&bytes, &cuts_for(&bytes, &random, mode));
        prop_assert_eq!(split, whole);
        // Reading an answer from any bytes never panics either.
        let _ = serde_json::from_slice::<crate::UpstreamAnswer>(&bytes);
    }

    #[test]
    fn a_well_formed_stream_gives_its_payloads_however_it_is_split(
        events in prop::collection::vec(event(), 0..8),
        crlf in prop::collection::vec(any::<bool>(), 1..8),
        open_end in any::<bool>(),
        random in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        mode in 0..3u8,
    ) {
        let bytes = encode(&events, &crlf, open_end);
        let payloads: Vec<String> = events.iter().map(|e| e.lines.join("\n")).collect();
        let text = String::from_utf8_lossy(&bytes);
        prop_assert_eq!(&feed(&bytes, &[]), &payloads, "stream {:?}", text);
        prop_assert_eq!(
            &feed(&bytes, &cuts_for(&bytes, &random, mode)),
            &payloads,
            "stream {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}
