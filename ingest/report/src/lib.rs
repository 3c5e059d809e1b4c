//! The capacity trend report (`statmsg report`): from sync runs to figures ([`figures`], pure,
//! also the `--json` contract) and to one self-contained HTML page ([`html`], inline CSS and
//! SVG, no script). No I/O here: the binary reads the runs (log folders or InfluxDB) and
//! writes the file.

pub mod figures;
pub mod html;
pub mod stats;
pub mod svg;

pub use figures::{figures, Cleanup, Figures, Options, RunFacts};
