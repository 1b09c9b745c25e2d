// A4 pages drawn with cairo for the statements (text as real text, so a PDF can be searched and
// checked with pdftotext): a cursor that moves down the page, text left or right aligned, rules,
// and a new page when the next block would not fit.
#pragma once
#include <cairo-pdf.h>
#include <cairo.h>

#include <cstdint>
#include <string>

#include "core/status.h"

namespace corral {

struct PdfDoc {
  static constexpr double kW = 595.0, kH = 842.0, kMargin = 40.0;
  cairo_surface_t* surface = nullptr;
  cairo_t* cr = nullptr;
  double y = kMargin;
  std::string out;  // the PDF's bytes as cairo writes them

  PdfDoc() {
    surface = cairo_pdf_surface_create_for_stream(
        [](void* closure, const unsigned char* data, unsigned int n) {
          static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), n);
          return CAIRO_STATUS_SUCCESS;
        },
        &out, kW, kH);
    cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 0, 0, 0);
  }
  ~PdfDoc() {
    if (cr) cairo_destroy(cr);
    if (surface) cairo_surface_destroy(surface);
  }
  PdfDoc(const PdfDoc&) = delete;
  PdfDoc& operator=(const PdfDoc&) = delete;

  bool ok() const { return cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS; }
  void font(double size, bool bold = false, bool mono = false) {
    cairo_select_font_face(cr, mono ? "DejaVu Sans Mono" : "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
  }
  void text(double x, const std::string& s, bool right = false) {
    double tx = x;
    if (right) {
      cairo_text_extents_t e;
      cairo_text_extents(cr, s.c_str(), &e);
      tx = x - e.x_advance;
    }
    cairo_move_to(cr, tx, y);
    cairo_show_text(cr, s.c_str());
  }
  void need(double h) {
    if (y + h <= kH - kMargin) return;
    cairo_show_page(cr);
    y = kMargin;
  }
  void line(double x0, double x1) {
    cairo_set_line_width(cr, 0.5);
    cairo_move_to(cr, x0, y + 3);
    cairo_line_to(cr, x1, y + 3);
    cairo_stroke(cr);
  }
  // Ends the last page; the document's bytes, or why cairo failed.
  Expected<std::string> finish() {
    cairo_show_page(cr);
    cairo_destroy(cr);
    cr = nullptr;
    cairo_surface_finish(surface);
    const cairo_status_t s = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    surface = nullptr;
    if (s != CAIRO_STATUS_SUCCESS)
      return make_error(std::string("drawing the PDF failed: ") + cairo_status_to_string(s));
    return std::move(out);
  }
};

// 1234567 as "1,234,567".
inline std::string pdf_thousands(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v), o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) o += ',';
    o += s[i];
  }
  return (v < 0 ? "-" : "") + o;
}

}  // namespace corral
