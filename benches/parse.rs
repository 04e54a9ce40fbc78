//! Parser throughput on typical lines, in bytes of input per second: the built-in `nginx`
//! regex parser on an access line, `logfmt` on an application line, and `json` on a
//! structured log line (validated and embedded, no tree built).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shiplog::parse::ParserSet;

const NGINX: &str = r#"10.244.1.7 - - [10/Oct/2023:13:55:36 +0000] "GET /api/v1/products?page=2&sort=price HTTP/1.1" 200 5316 "https://shop.example.com/catalog" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0 Safari/537.36""#;

const LOGFMT: &str = r#"time=2023-10-10T13:55:36.123Z level=info msg="request completed" method=GET path=/api/v1/products status=200 duration=12.5ms bytes=5316 request_id=6f1c2a9e-3b1d-4e55-9a61-0c1f4e2b7d10 user_agent="Mozilla/5.0 (X11; Linux x86_64)""#;

const JSON: &str = r#"{"time":"2023-10-10T13:55:36.123Z","level":"info","msg":"request completed","method":"GET","path":"/api/v1/products","status":200,"duration_ms":12.5,"bytes":5316,"request_id":"6f1c2a9e-3b1d-4e55-9a61-0c1f4e2b7d10","user":{"id":42,"roles":["buyer"]}}"#;

fn parsers(c: &mut Criterion) {
    let set = ParserSet::builtin();
    let mut group = c.benchmark_group("parse");
    for (name, line) in [("nginx", NGINX), ("logfmt", LOGFMT), ("json", JSON)] {
        let Some(parser) = set.get(name) else {
            panic!("built-in parser {name} is missing");
        };
        assert!(
            parser.parse(line, 2023).is_some(),
            "{name} must match its line"
        );
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| b.iter(|| parser.parse(black_box(line), 2023)));
    }
    group.finish();
}

criterion_group!(benches, parsers);
criterion_main!(benches);
