//! What begins and what continues an event: a custom rule's `start` regex, or one of the
//! built-in state machines.
//!
//! The built-in rules follow Fluent Bit's built-in multiline parsers (`java`, `python`,
//! `go`, `ruby` in `src/multiline/flb_ml_parser_*.c`): each is a list of transitions
//! `from states, regex, to state`. A line that matches a transition out of the current
//! state continues the event; one that does not ends it, and is then tried as the start of
//! a new one; a line that starts nothing is an event of its own, shipped at once. Where we
//! differ, for the traces users paste into issues: Python's chained tracebacks ("During
//! handling of the above exception…") stay one event, a Go panic's `[recovered]` line and
//! `goroutine N gp=… [...]:` headers continue it, and matching is per line (no `\n`), so
//! Java's `[:\r\n]` after `Exception` is `(?::|$)`.

use regex::bytes::Regex;

/// How the lines of an event are told apart from the lines that begin the next one.
#[derive(Debug)]
pub enum Rule {
    /// A custom rule (`format = "multiline"`, `start = 'REGEX'`): a line matching `start`
    /// begins a new event; any other line continues the current one (or, with none held,
    /// begins one).
    Start(Regex),
    /// A built-in rule.
    States(Machine),
}

/// What a line does to the event being joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It continues the held event, which is now in this state.
    Continue(u8),
    /// It begins a new event (the held one, if any, ends), now in this state.
    Start(u8),
    /// It ends the held event, if any, and is an event on its own.
    Alone,
}

/// A built-in rule: transitions between numbered states, state 0 being "no event".
#[derive(Debug)]
pub struct Machine {
    name: &'static str,
    transitions: Vec<Transition>,
}

#[derive(Debug)]
struct Transition {
    from: &'static [u8],
    regex: Regex,
    to: u8,
}

/// The state before any line of an event: transitions out of it begin events.
const START: u8 = 0;

impl Rule {
    /// A custom rule from its `start` regex, or the regex crate's reason it is not one.
    pub fn start(pattern: &str) -> Result<Rule, String> {
        Regex::new(pattern)
            .map(Rule::Start)
            .map_err(|error| error.to_string())
    }

    /// What `line` does, the held event (if any) being in `state`.
    pub fn step(&self, state: Option<u8>, line: &[u8]) -> Step {
        match self {
            Rule::Start(start) if start.is_match(line) => Step::Start(START),
            Rule::Start(_) => match state {
                Some(state) => Step::Continue(state),
                None => Step::Start(START),
            },
            Rule::States(machine) => machine.step(state, line),
        }
    }

    /// The built-in rule's name, or `None` for a custom one.
    pub fn builtin_name(&self) -> Option<&'static str> {
        match self {
            Rule::Start(_) => None,
            Rule::States(machine) => Some(machine.name),
        }
    }
}

impl Machine {
    fn step(&self, state: Option<u8>, line: &[u8]) -> Step {
        if let Some(state) = state {
            let next = self.next(state, line);
            if let Some(to) = next {
                return Step::Continue(to);
            }
        }
        match self.next(START, line) {
            Some(to) => Step::Start(to),
            None => Step::Alone,
        }
    }

    fn next(&self, state: u8, line: &[u8]) -> Option<u8> {
        self.transitions
            .iter()
            .find(|t| t.from.contains(&state) && t.regex.is_match(line))
            .map(|t| t.to)
    }
}

/// The built-in rules' names.
pub const BUILTIN_NAMES: [&str; 4] = ["go", "java", "python", "ruby"];

/// The built-in rule called `name`.
pub fn builtin(name: &str) -> Option<Rule> {
    let table: &[(&'static [u8], &str, u8)] = match name {
        "java" => JAVA,
        "python" => PYTHON,
        "go" => GO,
        "ruby" => RUBY,
        _ => return None,
    };
    let name = BUILTIN_NAMES.into_iter().find(|n| *n == name)?;
    // The patterns are constants, all compiled by a test; one that failed would only be
    // a transition that never happens.
    let transitions = table
        .iter()
        .filter_map(|&(from, pattern, to)| {
            let regex = Regex::new(pattern).ok()?;
            Some(Transition { from, regex, to })
        })
        .collect();
    Some(Rule::States(Machine { name, transitions }))
}

/// Every built-in transition's pattern, for the test that compiles them all.
#[cfg(test)]
pub(crate) fn builtin_patterns() -> impl Iterator<Item = &'static str> {
    [JAVA, PYTHON, GO, RUBY]
        .into_iter()
        .flatten()
        .map(|&(_, pattern, _)| pattern)
}

// Java: `java_after_exception` = 1, `java` = 2, `java_start_exception` = 3.
const JAVA: &[(&[u8], &str, u8)] = &[
    (
        &[0, 3],
        r"(?:Exception|Error|Throwable|V8 errors stack trace)(?::|$)",
        1,
    ),
    (&[1], r"^[\t ]*nested exception is:[\t ]*", 3),
    (&[1], r"^[\r\n]*$", 1),
    (&[1, 2], r"^[\t ]+(?:eval )?at ", 2),
    (
        &[1, 2],
        r"^[\t ]+--- End of inner exception stack trace ---$",
        2,
    ),
    (
        &[1, 2],
        r"^--- End of stack trace from previous location where exception was thrown ---$",
        2,
    ),
    (&[1, 2], r"^[\t ]*(?:Caused by|Suppressed):", 1),
    (
        &[1, 2],
        r"^[\t ]*\.\.\. \d+ (?:more|common frames omitted)",
        2,
    ),
];

// Python: `python` = 1 (frames), `python_end` = 2 (after `Type: message`), 3 = the blank
// line after it, 4 = a chaining sentence and the blank line after it.
const PYTHON: &[(&[u8], &str, u8)] = &[
    (&[0], r"^Traceback \(most recent call last\):$", 1),
    (&[1], r"^[\t ]", 1),
    (&[1], r"^(?:[^\s.():]+\.)*[^\s.():]+(?::|$)", 2),
    (&[2], r"^$", 3),
    (
        &[3],
        r"^(?:During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)$",
        4,
    ),
    (&[4], r"^$", 4),
    (&[4], r"^Traceback \(most recent call last\):$", 1),
];

// Go: `go_after_panic` = 1, `go_after_signal` = 2, `go_goroutine` = 3, `go_frame_1` = 4,
// `go_frame_2` = 5.
const GO: &[(&[u8], &str, u8)] = &[
    (&[0], r"\bpanic: ", 1),
    (&[0], r"http: panic serving", 3),
    (&[1], r"^\tpanic: ", 1),
    (&[1, 2, 4], r"^$", 3),
    (&[1], r"^\[signal ", 2),
    (&[3], r"^goroutine \d+ [^\[]*\[[^\]]+\]:$", 4),
    (&[4], r"^(?:[^\s.:]+\.)*[^\s.():]+\(|^created by ", 5),
    (&[4], r"^\.\.\.additional frames elided\.\.\.$", 4),
    (&[5], r"^\s", 4),
];

// Ruby: `ruby_after_exception` = 1, `ruby` = 2.
const RUBY: &[(&[u8], &str, u8)] = &[
    (&[0], r"^.+:\d+:in\s+.*", 1),
    (&[1, 2], r"^\s+from\s+.*:\d+:in\s+.*", 2),
];
