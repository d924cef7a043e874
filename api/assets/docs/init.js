// Renders /openapi.json with the vendored Swagger UI. A file rather than an inline script, so
// that the page's Content-Security-Policy can refuse every inline script.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No badge fetched from swagger.io's validator.
  validatorUrl: null,
});
