//! The PutLogEvents requests one batch becomes: records grouped by log stream, each stream's
//! events in time order, cut into requests that respect every limit of the API.
//!
//! Pure: no clock is read (the caller passes "now" for records without a usable `time`) and
//! nothing is sent. The limits, per request (one log stream each):
//! - at most [`Limits::max_events`] events (10,000);
//! - at most [`Limits::max_bytes`] bytes (1,048,576), counting each message's UTF-8 bytes
//!   plus [`EVENT_OVERHEAD`] (26);
//! - events in time order (sorted by timestamp, stably, so records of one time keep their
//!   order);
//! - the events span less than [`Limits::max_span_ms`] (24 hours);
//! - no message longer than [`Limits::max_message`] (256 KiB minus 26 bytes): a longer
//!   record is cut at UTF-8 boundaries into pieces that follow each other in the stream,
//!   with the record's timestamp. A piece is not valid JSON on its own; the pieces of one
//!   record are consecutive events of one stream with one timestamp, and concatenated give
//!   the record back.

use std::collections::HashMap;

use jiff::Timestamp;

/// What CloudWatch adds to each message's size when it measures a request.
pub const EVENT_OVERHEAD: usize = 26;

/// The limits a request must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Events per request.
    pub max_events: usize,
    /// Bytes per request: messages' UTF-8 bytes plus [`EVENT_OVERHEAD`] per event.
    pub max_bytes: usize,
    /// The span of one request's timestamps must be less than this.
    pub max_span_ms: i64,
    /// Bytes of one message.
    pub max_message: usize,
}

/// CloudWatch Logs' limits for PutLogEvents.
pub const LIMITS: Limits = Limits {
    max_events: 10_000,
    max_bytes: 1_048_576,
    max_span_ms: 24 * 60 * 60 * 1000,
    max_message: 256 * 1024 - EVENT_OVERHEAD,
};

/// Where a record goes: a log group and a log stream in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    /// The log group's name.
    pub group: String,
    /// The log stream's name.
    pub stream: String,
}

/// One log event of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The record's JSON, or one piece of it.
    pub message: String,
    /// Which record of the batch (counting from 0) this event carries (a piece of).
    pub record: usize,
}

/// One PutLogEvents call: events of one stream, within every limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where the events go.
    pub destination: Destination,
    /// The events, in time order.
    pub events: Vec<Event>,
}

impl Request {
    /// The request's size as CloudWatch counts it.
    pub fn bytes(&self) -> usize {
        self.events.iter().map(event_bytes).sum()
    }
}

/// What building the requests of a batch found worth reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The requests; those of one stream are in time order, and must be sent in order.
    pub requests: Vec<Request>,
    /// Records cut into several events as they were longer than [`Limits::max_message`].
    pub split_records: usize,
}

/// Builds the requests for `records`, each a destination and the record's JSON, numbered
/// in the order given. `now_ms` is the timestamp of a record without a readable `time`.
pub fn plan<'a>(
    records: impl IntoIterator<Item = (&'a Destination, &'a [u8])>,
    now_ms: i64,
    limits: &Limits,
) -> Plan {
    let mut streams: Vec<(Destination, Vec<Event>)> = Vec::new();
    let mut index: HashMap<&'a Destination, usize> = HashMap::new();
    let mut split_records = 0;
    // The records of one chunk share one destination: look it up once per run of them.
    let mut last: Option<(&'a Destination, usize)> = None;
    for (record, (destination, json)) in records.into_iter().enumerate() {
        let slot = match last {
            Some((known, slot)) if std::ptr::eq(known, destination) => slot,
            _ => *index.entry(destination).or_insert_with(|| {
                streams.push((destination.clone(), Vec::new()));
                streams.len() - 1
            }),
        };
        last = Some((destination, slot));
        let timestamp = record_time_ms(json).unwrap_or(now_ms);
        let message = String::from_utf8_lossy(json);
        let events = &mut streams[slot].1;
        if message.len() <= limits.max_message {
            events.push(Event {
                timestamp,
                message: message.into_owned(),
                record,
            });
            continue;
        }
        split_records += 1;
        events.extend(
            pieces(&message, limits.max_message)
                .into_iter()
                .map(|piece| Event {
                    timestamp,
                    message: piece.to_owned(),
                    record,
                }),
        );
    }
    let mut requests = Vec::new();
    for (destination, mut events) in streams {
        events.sort_by_key(|event| event.timestamp);
        cut(destination, events, limits, &mut requests);
    }
    Plan {
        requests,
        split_records,
    }
}

/// Cuts one stream's events, already in time order, into requests within `limits`.
fn cut(destination: Destination, events: Vec<Event>, limits: &Limits, out: &mut Vec<Request>) {
    let mut current: Vec<Event> = Vec::new();
    let mut bytes = 0;
    for event in events {
        let size = event_bytes(&event);
        let full = current.first().is_some_and(|first| {
            current.len() >= limits.max_events
                || bytes + size > limits.max_bytes
                || event.timestamp - first.timestamp >= limits.max_span_ms
        });
        if full {
            out.push(Request {
                destination: destination.clone(),
                events: std::mem::take(&mut current),
            });
            bytes = 0;
        }
        bytes += size;
        current.push(event);
    }
    if !current.is_empty() {
        out.push(Request {
            destination,
            events: current,
        });
    }
}

fn event_bytes(event: &Event) -> usize {
    event.message.len() + EVENT_OVERHEAD
}

/// What PutLogEvents said it did not take from a request: its `rejectedLogEventsInfo`
/// indexes into the request's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectedInfo {
    /// Events `0..=i` were older than the group's retention.
    pub expired_end: Option<usize>,
    /// Events `0..=i` were older than 14 days (or than the group).
    pub too_old_end: Option<usize>,
    /// Events `i..` were more than 2 hours in the future.
    pub too_new_start: Option<usize>,
}

/// How many records of `request` the rejected events carry (pieces of one record are one
/// record; a record is counted once however many of its pieces were refused).
pub fn rejected_records(request: &Request, info: &RejectedInfo) -> usize {
    let events = request.events.len();
    let old_end = [info.expired_end, info.too_old_end]
        .into_iter()
        .flatten()
        .map(|end| (end + 1).min(events))
        .max()
        .unwrap_or(0);
    let new_start = info.too_new_start.unwrap_or(events).clamp(old_end, events);
    let mut records: Vec<usize> = request.events[..old_end]
        .iter()
        .chain(&request.events[new_start..])
        .map(|event| event.record)
        .collect();
    records.dedup();
    records.len()
}

/// `message` cut into pieces of at most `max` bytes, each ending at a UTF-8 boundary (a
/// character is never split, so `max` must be at least 4). An empty message is one piece.
pub fn pieces(message: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::with_capacity(message.len() / max.max(1) + 1);
    let mut rest = message;
    while rest.len() > max {
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        out.push(piece);
        rest = tail;
    }
    out.push(rest);
    out
}

/// The record's `time` in milliseconds since the epoch, read cheaply: shiplog's records
/// start with `{"time":"<RFC 3339>"`. `None` when they do not or the time does not parse.
pub fn record_time_ms(json: &[u8]) -> Option<i64> {
    const PREFIX: &[u8] = b"{\"time\":\"";
    let rest = json.strip_prefix(PREFIX)?;
    let end = memchr::memchr(b'"', rest)?;
    let text = &rest[..end];
    utc_millis(text).or_else(|| {
        let time: Timestamp = std::str::from_utf8(text).ok()?.parse().ok()?;
        Some(time.as_millisecond())
    })
}

/// The fast path of [`record_time_ms`] for the form container runtimes write,
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` from 1970 on (a fifth of the cost of a full RFC 3339
/// parse); `None` for anything else, which the full parser then reads.
fn utc_millis(text: &[u8]) -> Option<i64> {
    let (&b'Z', text) = text.split_last()? else {
        return None;
    };
    let number = |at: usize, len: usize| -> Option<i64> {
        text.get(at..at + len)?.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| text.get(at) != Some(&c)) {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let millis = match &text[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let digits = fraction.len().min(3);
            let value = number(20, digits)?;
            number(20, fraction.len())?;
            value * 10_i64.pow(3 - digits as u32)
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A log group name CloudWatch accepts: 1 to 512 of `A-Z a-z 0-9 . - _ / #`; any other
/// character becomes `_`, and an empty name `_`.
pub fn group_name(name: &str) -> String {
    legal(name, |c| c.is_ascii_alphanumeric() || ".-_/#".contains(c))
}

/// A log stream name CloudWatch accepts: 1 to 512 characters, none of them `:` or `*`
/// (each becomes `_`); an empty name `_`.
pub fn stream_name(name: &str) -> String {
    legal(name, |c| c != ':' && c != '*' && !c.is_control())
}

fn legal(name: &str, allowed: impl Fn(char) -> bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .collect();
    if out.len() > 512 {
        let mut end = 512;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR_MS: i64 = 60 * 60 * 1000;

    fn destination(group: &str, stream: &str) -> Destination {
        Destination {
            group: group.to_owned(),
            stream: stream.to_owned(),
        }
    }

    fn record(time: &str, body: &str) -> Vec<u8> {
        format!("{{\"time\":\"{time}\",\"log\":\"{body}\"}}").into_bytes()
    }

    fn plan_of(records: &[(Destination, Vec<u8>)], limits: &Limits) -> Plan {
        plan(records.iter().map(|(d, j)| (d, j.as_slice())), 7, limits)
    }

    /// (events, bytes) of each request.
    fn shape(plan: &Plan) -> Vec<(usize, usize)> {
        plan.requests
            .iter()
            .map(|r| (r.events.len(), r.bytes()))
            .collect()
    }

    #[test]
    fn the_time_is_read_from_the_records_first_key_to_the_millisecond() {
        let cases: [(&[u8], Option<i64>); 6] = [
            (
                b"{\"time\":\"2026-11-25T09:00:00.123456789Z\",\"log\":\"x\"}",
                Some(1_795_597_200_123),
            ),
            (
                b"{\"time\":\"2026-11-25T10:00:00.5+01:00\"}",
                Some(1_795_597_200_500),
            ),
            (b"{\"time\":\"yesterday\"}", None),
            (b"{\"log\":\"x\",\"time\":\"2026-11-25T09:00:00Z\"}", None),
            (b"{\"time\":\"2026-11-25T09:00:00Z", None),
            (b"", None),
        ];
        for (json, expected) in cases {
            assert_eq!(
                record_time_ms(json),
                expected,
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn records_without_a_time_take_now() {
        let d = destination("g", "s");
        let records = [(d.clone(), b"{\"log\":\"no time\"}".to_vec())];
        let plan = plan_of(&records, &LIMITS);
        assert_eq!(plan.requests[0].events[0].timestamp, 7);
    }

    #[test]
    fn records_go_one_request_per_stream_in_the_order_streams_first_appear() {
        let a = destination("/k8s/a", "p1.c");
        let b = destination("/k8s/b", "p2.c");
        let c = destination("/k8s/a", "p3.c");
        let t = "2026-11-25T09:00:00Z";
        let records = [
            (a.clone(), record(t, "1")),
            (b.clone(), record(t, "2")),
            (a.clone(), record(t, "3")),
            (c.clone(), record(t, "4")),
        ];
        let plan = plan_of(&records, &LIMITS);
        let got: Vec<(&Destination, Vec<usize>)> = plan
            .requests
            .iter()
            .map(|r| (&r.destination, r.events.iter().map(|e| e.record).collect()))
            .collect();
        assert_eq!(got, [(&a, vec![0, 2]), (&b, vec![1]), (&c, vec![3])]);
        assert_eq!(plan.split_records, 0);
    }

    #[test]
    fn events_are_sorted_by_time_and_records_of_one_time_keep_their_order() {
        let d = destination("g", "s");
        let records = [
            (d.clone(), record("2026-11-25T09:00:02Z", "late")),
            (d.clone(), record("2026-11-25T09:00:01Z", "first")),
            (d.clone(), record("2026-11-25T09:00:01Z", "second")),
        ];
        let plan = plan_of(&records, &LIMITS);
        let order: Vec<usize> = plan.requests[0].events.iter().map(|e| e.record).collect();
        assert_eq!(order, [1, 2, 0]);
    }

    #[test]
    fn twenty_five_thousand_small_events_make_three_requests_of_at_most_ten_thousand() {
        let d = destination("g", "s");
        let records: Vec<_> = (0..25_000)
            .map(|i| {
                (
                    d.clone(),
                    record("2026-11-25T09:00:00Z", &format!("{i:05}")),
                )
            })
            .collect();
        let size = records[0].1.len() + EVENT_OVERHEAD;
        let plan = plan_of(&records, &LIMITS);
        assert_eq!(
            shape(&plan),
            [
                (10_000, 10_000 * size),
                (10_000, 10_000 * size),
                (5_000, 5_000 * size)
            ]
        );
    }

    #[test]
    fn three_mebibytes_of_large_events_make_requests_of_at_most_one_mebibyte() {
        let d = destination("g", "s");
        // 100 KiB records: ten fit in 1 MiB with their overhead, not eleven.
        let body = "x".repeat(100 * 1024 - 40);
        let records: Vec<_> = (0..31)
            .map(|_| (d.clone(), record("2026-11-25T09:00:00Z", &body)))
            .collect();
        let size = records[0].1.len() + EVENT_OVERHEAD;
        assert!(10 * size <= LIMITS.max_bytes && 11 * size > LIMITS.max_bytes);
        let plan = plan_of(&records, &LIMITS);
        assert_eq!(
            shape(&plan),
            [(10, 10 * size), (10, 10 * size), (10, 10 * size), (1, size)]
        );
    }

    #[test]
    fn a_request_spans_less_than_a_day() {
        let d = destination("g", "s");
        let records = [
            (d.clone(), record("2026-11-25T00:00:00Z", "a")),
            (d.clone(), record("2026-11-25T23:59:59.999Z", "b")),
            (d.clone(), record("2026-11-26T00:00:00Z", "c")),
            (d.clone(), record("2026-11-26T01:00:00Z", "d")),
        ];
        let plan = plan_of(&records, &LIMITS);
        let records: Vec<Vec<usize>> = plan
            .requests
            .iter()
            .map(|r| r.events.iter().map(|e| e.record).collect())
            .collect();
        assert_eq!(records, [vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn a_message_over_the_limit_is_cut_into_consecutive_pieces_at_character_boundaries() {
        let d = destination("g", "s");
        // 'é' is two bytes: a cut at an odd byte would split it.
        let body = "é".repeat(200_000);
        let json = record("2026-11-25T09:00:00Z", &body);
        let records = [(d.clone(), json.clone())];
        let plan = plan_of(&records, &LIMITS);
        assert_eq!(plan.split_records, 1);
        let events: Vec<&Event> = plan.requests.iter().flat_map(|r| &r.events).collect();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.message.len() <= LIMITS.max_message));
        assert!(events.iter().all(|e| e.record == 0));
        let joined: String = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(joined.as_bytes(), json.as_slice());
    }

    #[test]
    fn rejected_events_are_counted_as_the_records_they_carry() {
        let event = |record| Event {
            timestamp: 0,
            message: "x".into(),
            record,
        };
        // Records 0, 1 (two pieces), 2, 3, 4.
        let request = Request {
            destination: destination("g", "s"),
            events: [0, 1, 1, 2, 3, 4].into_iter().map(event).collect(),
        };
        let info = |expired_end, too_old_end, too_new_start| RejectedInfo {
            expired_end,
            too_old_end,
            too_new_start,
        };
        let cases = [
            (info(None, None, None), 0),
            (info(None, Some(0), None), 1),
            (info(None, Some(2), None), 2),
            (info(Some(1), Some(0), None), 2),
            (info(None, None, Some(4)), 2),
            (info(None, Some(1), Some(4)), 4),
            (info(Some(5), None, Some(0)), 5),
            (info(None, Some(99), None), 5),
        ];
        for (info, expected) in cases {
            assert_eq!(rejected_records(&request, &info), expected, "{info:?}");
        }
    }

    #[test]
    fn names_are_made_legal_for_cloudwatch() {
        let cases = [
            (group_name("/k8s/kube-system"), "/k8s/kube-system"),
            (group_name("/k8s/a b:c"), "/k8s/a_b_c"),
            (group_name(""), "_"),
            (stream_name("pod-1.app"), "pod-1.app"),
            (stream_name("a:b*c"), "a_b_c"),
            (stream_name(""), "_"),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
        assert_eq!(group_name(&"a".repeat(600)).len(), 512);
    }

    /// Small limits, so that the proptest reaches every one of them.
    const SMALL: Limits = Limits {
        max_events: 5,
        max_bytes: 200,
        max_span_ms: 3 * HOUR_MS,
        max_message: 60,
    };

    fn any_record() -> impl Strategy<Value = (Destination, Vec<u8>)> {
        (
            0..3usize,
            0..2usize,
            0..48i64,
            "[a-zé]{0,120}",
            any::<bool>(),
        )
            .prop_map(|(group, stream, hour, body, timed)| {
                let d = destination(&format!("g{group}"), &format!("s{stream}"));
                let json = if timed {
                    let time = Timestamp::from_millisecond(1_795_597_200_000 + hour * HOUR_MS)
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    record(&time, &body)
                } else {
                    format!("{{\"log\":\"{body}\"}}").into_bytes()
                };
                (d, json)
            })
    }

    #[test]
    fn the_fast_time_path_refuses_what_it_cannot_read_exactly() {
        let cases: [(&[u8], Option<i64>); 8] = [
            (b"1970-01-01T00:00:00Z", Some(0)),
            (b"2026-11-25T09:00:00.1Z", Some(1_795_597_200_100)),
            (b"2024-02-29T00:00:00.999999999Z", Some(1_709_164_800_999)),
            (b"2026-02-29T00:00:00Z", None),
            (b"1969-12-31T23:59:59.5Z", None),
            (b"2026-11-25T09:00:00+01:00", None),
            (b"2026-11-25T09:00:00.Z", None),
            (b"2026-11-25 09:00:00Z", None),
        ];
        for (text, expected) in cases {
            assert_eq!(
                utc_millis(text),
                expected,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    proptest! {
        #[test]
        fn the_fast_time_path_agrees_with_the_full_parser(
            millis in 0i64..8_000_000_000_000,
            nanos in 0i32..1_000_000,
        ) {
            let time = Timestamp::from_millisecond(millis)
                .and_then(|t| t.checked_add(jiff::SignedDuration::from_nanos(i64::from(nanos))))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let text = time.to_string();
            prop_assert_eq!(utc_millis(text.as_bytes()), Some(time.as_millisecond()), "{}", text);
        }

        #[test]
        fn every_request_respects_every_limit_and_no_event_is_lost_or_reordered(
            records in proptest::collection::vec(any_record(), 0..80),
            limits in prop_oneof![Just(SMALL), Just(LIMITS)],
        ) {
            let plan = plan(records.iter().map(|(d, j)| (d, j.as_slice())), 1_795_600_000_000, &limits);
            for request in &plan.requests {
                prop_assert!(!request.events.is_empty());
                prop_assert!(request.events.len() <= limits.max_events);
                prop_assert!(request.bytes() <= limits.max_bytes);
                prop_assert!(request.events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
                let span = request.events.last().map(|e| e.timestamp).unwrap_or(0)
                    - request.events.first().map(|e| e.timestamp).unwrap_or(0);
                prop_assert!(span < limits.max_span_ms);
                prop_assert!(request.events.iter().all(|e| e.message.len() <= limits.max_message));
            }
            // Per stream: the pieces, joined, are the records, in time order and (within
            // one time) in the order given.
            let mut destinations: Vec<&Destination> = records.iter().map(|(d, _)| d).collect();
            destinations.sort();
            destinations.dedup();
            for destination in destinations {
                let mut expected: Vec<(i64, usize)> = records
                    .iter()
                    .enumerate()
                    .filter(|(_, (d, _))| d == destination)
                    .map(|(i, (_, json))| (record_time_ms(json).unwrap_or(1_795_600_000_000), i))
                    .collect();
                expected.sort_by_key(|&(time, _)| time);
                let events: Vec<&Event> = plan
                    .requests
                    .iter()
                    .filter(|r| &r.destination == destination)
                    .flat_map(|r| &r.events)
                    .collect();
                let mut got: Vec<(i64, usize)> = Vec::new();
                let mut joined: HashMap<usize, String> = HashMap::new();
                for event in events {
                    if got.last() != Some(&(event.timestamp, event.record)) {
                        got.push((event.timestamp, event.record));
                    }
                    joined.entry(event.record).or_default().push_str(&event.message);
                }
                prop_assert_eq!(&got, &expected);
                for (record, text) in joined {
                    prop_assert_eq!(text.as_bytes(), records[record].1.as_slice());
                }
            }
        }
    }
}
