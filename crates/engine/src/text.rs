//! Turning a token stream into text a client can use: whole UTF-8 characters only (a token can
//! end in the middle of one), and stop sequences cut out even when they span several tokens.

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Collects token bytes and releases them as soon as they form complete UTF-8 characters.
#[derive(Debug, Default)]
pub struct Utf8Assembler {
    pending: Vec<u8>,
}

impl Utf8Assembler {
    /// Adds the bytes of one token and returns the text that is now complete (maybe empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    // `valid_up_to` bytes were checked by from_utf8 just above.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match err.error_len() {
                        // Incomplete character at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never become valid UTF-8: replace them, go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end of generation, with incomplete characters replaced.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Finds stop sequences in streamed text, holding back text that could be the start of one.
#[derive(Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What [`StopMatcher::push`] decided.
#[derive(Debug, PartialEq, Eq)]
pub struct StopScan {
    /// Text safe to send to the client now.
    pub emit: String,
    /// A stop sequence was found: generation must end, nothing after `emit` is output.
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for these stop sequences (empty ones are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Adds newly generated text.
    pub fn push(&mut self, text: &str) -> StopScan {
        if self.stops.is_empty() {
            return StopScan {
                emit: text.to_owned(),
                stopped: false,
            };
        }
        self.held.push_str(text);
        let first_match = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = first_match {
            let emit = self.held[..at].to_owned();
            self.held.clear();
            return StopScan {
                emit,
                stopped: true,
            };
        }
        let keep = self.longest_partial_suffix();
        let split = self.held.len() - keep;
        let emit = self.held[..split].to_owned();
        self.held.drain(..split);
        StopScan {
            emit,
            stopped: false,
        }
    }

    /// Text still held back when generation ends without a stop: it belongs to the output.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop sequence.
    fn longest_partial_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_a_character_boundary_and_marks_the_cut() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 3), "abc…");
        // "é" is two bytes: a cut at byte 2 would split it, so it backs off to byte 1.
        assert_eq!(clip("aéb", 2), "a…");
    }

    #[test]
    fn utf8_assembler_waits_for_split_character() {
        let mut asm = Utf8Assembler::default();
        let euro = "€".as_bytes();
        assert_eq!(asm.push(&euro[..1]), "");
        assert_eq!(asm.push(&euro[1..2]), "");
        assert_eq!(asm.push(&[euro[2], b'a']), "€a");
        assert_eq!(asm.finish(), "");
    }

    #[test]
    fn utf8_assembler_replaces_invalid_bytes_and_continues() {
        let mut asm = Utf8Assembler::default();
        assert_eq!(asm.push(&[b'a', 0xff, b'b']), "a\u{fffd}b");
        assert_eq!(asm.push(&[0xe2, 0x82]), "");
        assert_eq!(asm.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_matcher_without_stops_passes_text_through() {
        let mut m = StopMatcher::new(&[]);
        assert_eq!(
            m.push("hello"),
            StopScan {
                emit: "hello".into(),
                stopped: false
            }
        );
    }

    #[test]
    fn stop_matcher_finds_stop_split_across_pushes() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("abc E").emit, "abc ");
        assert_eq!(m.push("N").emit, "");
        let scan = m.push("D and more");
        assert!(scan.stopped);
        assert_eq!(scan.emit, "");
    }

    #[test]
    fn stop_matcher_releases_false_partial_match() {
        let mut m = StopMatcher::new(&["END".to_string()]);
        assert_eq!(m.push("xE").emit, "x");
        let scan = m.push("Nx");
        assert!(!scan.stopped);
        assert_eq!(scan.emit, "ENx");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn stop_matcher_picks_earliest_of_several_stops() {
        let mut m = StopMatcher::new(&["world".to_string(), "lo".to_string()]);
        let scan = m.push("hello world");
        assert!(scan.stopped);
        assert_eq!(scan.emit, "hel");
    }

    #[test]
    fn stop_matcher_keeps_held_text_on_finish() {
        let mut m = StopMatcher::new(&["\n\n".to_string()]);
        assert_eq!(m.push("line\n").emit, "line");
        assert_eq!(m.finish(), "\n");
    }

    #[test]
    fn stop_matcher_handles_multibyte_text() {
        let mut m = StopMatcher::new(&["é!".to_string()]);
        assert_eq!(m.push("caféé").emit, "café");
        let scan = m.push("!");
        assert!(scan.stopped);
        assert_eq!(scan.emit, "");
    }
}
