// The web pages (chat at /, usage at /usage, host at /admin) and their assets, built into the
// binary. They are served under a Content-Security-Policy that allows scripts, styles and
// requests from this origin only: no inline script, no other origin, no framing.
#include <httplib.h>

#include "core/embedded.h"
#include "server/http_server.h"

namespace corral {

namespace {

const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src "
    "'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

std::string content_type(const std::string& name) {
  auto ends = [&](const char* s) {
    const std::string e = s;
    return name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

}  // namespace

bool is_page_path(const std::string& path) {
  return path == "/" || path == "/usage" || path == "/admin" || path == "/index.html" ||
         path.rfind("/static/", 0) == 0 || path == "/favicon.ico";
}

void HttpServer::page_routes() {
  httplib::Server& s = *svr_;
  auto serve = [this](const std::string& name, httplib::Response& res, const std::string& route) {
    const EmbeddedFile* f = find_embedded("web/" + name);
    res.set_header("Content-Security-Policy", kCsp);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("Cache-Control", "no-cache");
    if (!f) {
      res.status = 404;
      res.set_content("not found\n", "text/plain");
    } else {
      res.set_content(std::string(f->view()), content_type(name));
    }
    metrics_.count(route, res.status);
  };
  for (auto [path, file] : {std::pair{"/", "index.html"}, std::pair{"/index.html", "index.html"},
                            std::pair{"/usage", "usage.html"}, std::pair{"/admin", "admin.html"}})
    s.Get(path, [serve, file](const httplib::Request&, httplib::Response& res) {
      serve(file, res, "/page");
    });
  s.Get(R"(/static/([A-Za-z0-9_-][A-Za-z0-9._-]*))",
        [serve](const httplib::Request& req, httplib::Response& res) {
          serve(req.matches[1].str(), res, "/static");
        });
  s.Get("/favicon.ico", [this](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    metrics_.count("/favicon.ico", 204);
  });
}

}  // namespace corral
