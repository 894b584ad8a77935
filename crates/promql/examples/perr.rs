fn main() {
    let text = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    for q in text.split("\n%%\n") {
        let q = q.strip_suffix('\n').unwrap_or(q);
        match promql::parse(q) {
            Ok(e) => println!("OK {}", promql::format(&e)),
            Err(e) => println!("{}", e.message().replace('\n', "\\n")),
        }
    }
}
