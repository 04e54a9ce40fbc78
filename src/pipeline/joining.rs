//! One file's multiline joiners (one per stream its pod's `shiplog.io/multiline` selects a
//! rule for) and when the file last had new bytes, for `tail.multiline_flush`.
//!
//! The processor keeps one [`FileJoiners`] per open file. A file whose pod has no
//! multiline annotation has none: [`FileJoiners::route`] then hands each line straight to
//! the writer, one branch on an empty array.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::decode::{Message, Stream};
use crate::enrich::FileContext;
use crate::multiline::{Joiner, Rule};

/// `tail.multiline_flush` and `tail.multiline_max_lines`, and `tail.max_line_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct JoinSettings {
    /// How long a held event waits for its file's next bytes.
    pub flush: Duration,
    /// Lines per event before it is cut.
    pub max_lines: usize,
    /// Bytes per event before it is cut.
    pub max_bytes: usize,
}

impl JoinSettings {
    /// The defaults of `[tail]`, with `max_bytes` as given.
    pub fn defaults(max_bytes: usize) -> Self {
        JoinSettings {
            flush: Duration::from_secs(1),
            max_lines: 500,
            max_bytes,
        }
    }
}

/// The joiners of one file's streams (stdout, stderr).
#[derive(Debug)]
pub struct FileJoiners {
    joiners: [Option<Joiner>; 2],
    /// When the file last had new bytes (or was opened).
    last_bytes: Instant,
}

fn index(stream: Stream) -> usize {
    usize::from(stream == Stream::Stderr)
}

impl FileJoiners {
    /// The joiners `context` asks for.
    pub fn new(context: &FileContext, settings: JoinSettings) -> Self {
        let mut joiners = FileJoiners {
            joiners: [None, None],
            last_bytes: Instant::now(),
        };
        joiners.follow(context, settings, &mut |_| {});
        joiners
    }

    /// Makes the joiners those `context` asks for (its pod's annotations changed): a
    /// stream whose rule changed first emits what it held.
    pub fn follow(
        &mut self,
        context: &FileContext,
        settings: JoinSettings,
        emit: &mut dyn FnMut(Message<'_>),
    ) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            // An excluded stream ships nothing: no use joining its lines.
            let rules = context.stream(stream);
            let want = rules.multiline.as_ref().filter(|_| !rules.excluded);
            let slot = &mut self.joiners[index(stream)];
            let same = match (slot.as_ref(), want) {
                (Some(joiner), Some(rule)) => joiner.follows(rule),
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(joiner) = slot.as_mut() {
                joiner.flush(emit);
            }
            *slot = want.map(|rule: &Arc<Rule>| {
                Joiner::new(Arc::clone(rule), settings.max_lines, settings.max_bytes)
            });
        }
    }

    /// Whether no stream of the file joins lines.
    pub fn is_empty(&self) -> bool {
        self.joiners.iter().all(Option::is_none)
    }

    /// Notes that the file had new bytes now.
    pub fn touched(&mut self, now: Instant) {
        self.last_bytes = now;
    }

    /// Hands `message`, which began at offset `start`, to its stream's joiner, or straight
    /// to `emit` when its stream joins nothing.
    pub fn route(&mut self, message: Message<'_>, start: u64, emit: &mut dyn FnMut(Message<'_>)) {
        match &mut self.joiners[index(message.stream)] {
            Some(joiner) => joiner.push(message, start, emit),
            None => emit(message),
        }
    }

    /// Emits every held event.
    pub fn flush(&mut self, emit: &mut dyn FnMut(Message<'_>)) {
        for joiner in self.joiners.iter_mut().flatten() {
            joiner.flush(emit);
        }
    }

    /// The offset of the first line of the earliest held event.
    pub fn held_start(&self) -> Option<u64> {
        self.joiners
            .iter()
            .flatten()
            .filter_map(Joiner::held_start)
            .min()
    }

    /// When the held events are due to be flushed (`None` when none is held).
    pub fn due(&self, flush: Duration) -> Option<Instant> {
        self.held_start().map(|_| self.last_bytes + flush)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::enrich::StreamRules;
    use crate::multiline::builtin;

    fn context(stdout: Option<&Arc<Rule>>, stdout_excluded: bool) -> FileContext {
        FileContext {
            kubernetes: None,
            route: Arc::default(),
            streams: [
                StreamRules {
                    excluded: stdout_excluded,
                    parser: None,
                    multiline: stdout.cloned(),
                },
                StreamRules::default(),
            ],
            warnings: Vec::new(),
            illegal_topic: false,
            topic_refused: false,
        }
    }

    fn line(text: &str) -> Message<'_> {
        Message {
            time: Cow::Borrowed("t"),
            stream: Stream::Stdout,
            bytes: Cow::Borrowed(text.as_bytes()),
            truncated: false,
            partial: false,
        }
    }

    #[test]
    fn a_file_without_the_annotation_passes_lines_straight_through() {
        let settings = JoinSettings::defaults(1024);
        let mut joiners = FileJoiners::new(&context(None, false), settings);
        assert!(joiners.is_empty());
        let mut seen = Vec::new();
        joiners.route(line("java.lang.Error: x"), 0, &mut |m| {
            seen.push(m.bytes.into_owned())
        });
        assert_eq!(seen, [b"java.lang.Error: x".to_vec()]);
        assert_eq!(joiners.held_start(), None);
        assert_eq!(joiners.due(settings.flush), None);
    }

    #[test]
    fn a_changed_rule_first_ships_what_the_old_one_held_and_exclusion_joins_nothing() {
        let settings = JoinSettings::defaults(1024);
        let java = Arc::new(builtin("java").expect("built in"));
        let python = Arc::new(builtin("python").expect("built in"));
        let mut joiners = FileJoiners::new(&context(Some(&java), false), settings);
        let mut seen = Vec::new();
        let mut emit = |m: Message<'_>| seen.push(String::from_utf8_lossy(&m.bytes).into_owned());
        joiners.route(line("java.lang.Error: x"), 7, &mut emit);
        joiners.route(line("\tat a.b(C.java:1)"), 30, &mut emit);
        assert_eq!(joiners.held_start(), Some(7));
        joiners.follow(&context(Some(&java), false), settings, &mut emit);
        assert_eq!(
            joiners.held_start(),
            Some(7),
            "the same rule keeps its event"
        );
        joiners.follow(&context(Some(&python), false), settings, &mut emit);
        assert_eq!(joiners.held_start(), None);
        joiners.follow(&context(Some(&python), true), settings, &mut emit);
        assert!(joiners.is_empty(), "an excluded stream joins nothing");
        assert_eq!(seen, ["java.lang.Error: x\n\tat a.b(C.java:1)"]);
    }
}
