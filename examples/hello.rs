//! Runs an async main that prints Hello World.

fn main() -> Result<(), ringloop::Error> {
    ringloop::run(async {
        println!("Hello World");
    })
}
