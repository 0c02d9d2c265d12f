// The identity provider returns the ID token in the URL fragment, which never reaches the
// server: copy it into the form and post it (same origin, with the CSRF token).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("oidc-return");
  if (!form) { return; }
  var params = new URLSearchParams(window.location.hash.slice(1));
  history.replaceState(null, "", window.location.pathname);
  if (params.get("id_token")) {
    form.elements.id_token.value = params.get("id_token");
    form.elements.state.value = params.get("state") || "";
    form.submit();
  }
});
