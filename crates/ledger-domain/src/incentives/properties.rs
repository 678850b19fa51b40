//! Property tests: random command sequences (stub, filled below).
