//! End-to-end tests: the binary on real captures (samples/ and ../shared/captures), on
//! synthetic captures, and its command-line contract.

mod captures;
mod cli;
mod compressed;
mod fuzz;
mod hard;
mod hostile;
mod html;
mod inputs;
mod limits;
mod live;
mod lockon;
mod mutation;
mod packets;
mod perf;
mod playable;
mod remux;
mod report;
mod rtmps;
mod rtmpt;
mod samples;
mod synthetic;
mod util;
