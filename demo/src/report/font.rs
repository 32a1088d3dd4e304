//! The font the plots are drawn with: DejaVu Sans, embedded in the binary (`assets/`, with its
//! licence) and registered with plotters' `ab_glyph` text renderer once per process, so drawing
//! needs no system font library (no fontconfig, no freetype) and no font files on the machine.

use std::sync::OnceLock;

use plotters::style::FontStyle;

use super::ReportError;

/// The family name the plots ask for; the embedded font is registered under it.
pub const FAMILY: &str = "sans-serif";

const FILE_NAME: &str = "DejaVuSans.ttf";
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded font under [`FAMILY`] (once; later calls return the first result).
pub fn ensure_registered() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font { name: FILE_NAME })
    }
}
