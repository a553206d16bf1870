// Sign-in with the card (a card reader app's model): the card key is read and
// used here, in the browser, and never sent. CSP-safe: an external file, no eval.
"use strict";

(function () {
  const form = document.getElementById("signin-form");
  const statusLine = document.getElementById("signin-status");
  const button = document.getElementById("signin-button");

  function say(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("status--error", Boolean(isError));
  }

  function readText(input) {
    const file = input.files && input.files[0];
    if (!file) {
      return Promise.reject(new Error("ファイルを選んでください: " + input.labels[0].textContent));
    }
    return file.text();
  }

  function pemBody(pem, label) {
    const re = new RegExp("-----BEGIN " + label + "-----([A-Za-z0-9+/=\\s]+)-----END " + label + "-----");
    const m = re.exec(pem);
    if (!m) {
      throw new Error(label === "PRIVATE KEY" ? "鍵ファイルの形式が違います。" : "証明書ファイルの形式が違います。");
    }
    const bin = atob(m[1].replace(/\s+/g, ""));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out;
  }

  function fromBase64(text) {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out;
  }

  function toBase64(bytes) {
    let bin = "";
    const view = new Uint8Array(bytes);
    for (let i = 0; i < view.length; i++) {
      bin += String.fromCharCode(view[i]);
    }
    return btoa(bin);
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = {};
    }
    if (!response.ok) {
      throw new Error(data.message || "ログインできませんでした（" + response.status + "）。");
    }
    return data;
  }

  async function signIn() {
    const keyPem = await readText(document.getElementById("card-key"));
    const certPem = await readText(document.getElementById("card-cert"));
    pemBody(certPem, "CERTIFICATE");
    const key = await crypto.subtle.importKey(
      "pkcs8",
      pemBody(keyPem, "PRIVATE KEY"),
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign"]
    );
    const issued = await postJson("/api/signin/challenge", {});
    const challenge = fromBase64(issued.challenge);
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, challenge);
    const done = await postJson("/api/signin", {
      certificate: certPem,
      challenge: issued.challenge,
      signature: toBase64(signature),
    });
    window.location.assign(done.next || "/history");
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    say("確認しています…", false);
    signIn().catch(function (err) {
      say(err && err.message ? err.message : "ログインできませんでした。", true);
      button.disabled = false;
    });
  });
})();
