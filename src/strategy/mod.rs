//! The strategies.

mod names;

pub use names::{Expectation, Strategy};
