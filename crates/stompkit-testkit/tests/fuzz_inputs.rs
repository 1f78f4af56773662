//! The fuzzing driver on fixed inputs.
