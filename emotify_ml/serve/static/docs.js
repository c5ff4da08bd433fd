/* Emotify API reference: renders the server's own /openapi.json, with nothing fetched from elsewhere. */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function refName(ref) { return ref.split("/").pop(); }

  function typeNode(schema) {
    // a short type description, with links to named schemas
    const span = el("span", "type");
    const add = (part) => span.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    if (!schema) { add("any"); return span; }
    if (schema.$ref) {
      const a = el("a", "", refName(schema.$ref));
      a.href = "#schema-" + refName(schema.$ref);
      add(a);
    } else if (schema.anyOf || schema.oneOf) {
      (schema.anyOf || schema.oneOf).forEach((s, i) => { if (i) add(" | "); add(typeNode(s)); });
    } else if (schema.type === "array") {
      add("array of ");
      add(typeNode(schema.items));
    } else if (schema.type === "object" && schema.additionalProperties) {
      add("object of ");
      add(typeNode(schema.additionalProperties));
    } else if (schema.const !== undefined) {
      add(JSON.stringify(schema.const));
    } else if (schema.enum) {
      add(schema.enum.map((v) => JSON.stringify(v)).join(" | "));
    } else {
      add((schema.type || "any") + (schema.format ? ` (${schema.format})` : ""));
    }
    return span;
  }

  function limits(schema) {
    const parts = [];
    for (const [key, text] of [["minimum", "≥"], ["exclusiveMinimum", ">"], ["maximum", "≤"], ["exclusiveMaximum", "<"]]) {
      if (schema && schema[key] !== undefined) parts.push(`${text} ${schema[key]}`);
    }
    if (schema && schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
    return parts.join(", ");
  }

  function table(head, rows) {
    const t = el("table", "params");
    const tr = el("tr");
    head.forEach((h) => tr.appendChild(el("th", "", h)));
    t.appendChild(tr);
    rows.forEach((cells) => {
      const row = el("tr");
      cells.forEach((c) => { const td = el("td"); td.append(c); row.appendChild(td); });
      t.appendChild(row);
    });
    return t;
  }

  function operation(path, method, op) {
    const box = el("div", "operation");
    const title = el("h3");
    title.append(el("span", "method " + method, method.toUpperCase()), " ", el("code", "", path));
    if (op.summary) title.append(" ", el("small", "", op.summary));
    box.appendChild(title);
    if (op.description) box.appendChild(el("p", "", op.description));
    if (op.parameters && op.parameters.length) {
      box.appendChild(table(["parameter", "in", "type", "limits", "description"], op.parameters.map((p) => [
        p.name + (p.required ? " *" : ""), p.in, typeNode(p.schema), limits(p.schema), p.description || ""])));
    }
    if (op.requestBody) {
      const types = Object.keys(op.requestBody.content || {});
      box.appendChild(el("p", "", "Body: " + types.join(", ")));
    }
    const responses = Object.entries(op.responses || {}).map(([status, r]) => {
      const content = r.content || {};
      const first = Object.entries(content)[0];
      const schema = first && first[1].schema;
      return [status, first ? first[0] : "", schema ? typeNode(schema) : "", r.description || ""];
    });
    box.appendChild(table(["status", "media type", "body", "description"], responses));
    return box;
  }

  function schemaBox(name, schema) {
    const box = el("div", "schema");
    box.id = "schema-" + name;
    box.appendChild(el("h3", "", name));
    if (schema.description) box.appendChild(el("p", "", schema.description));
    const required = new Set(schema.required || []);
    const rows = Object.entries(schema.properties || {}).map(([prop, s]) => [
      prop + (required.has(prop) ? " *" : ""), typeNode(s), s.description || ""]);
    if (rows.length) box.appendChild(table(["field", "type", "description"], rows));
    return box;
  }

  async function main() {
    const response = await fetch("/openapi.json");
    if (!response.ok) {
      const box = $("message");
      box.hidden = false;
      box.textContent = response.status === 401
        ? "This server needs a token: open /?token=<token> once, then this page again."
        : "Could not load /openapi.json: " + response.status;
      return;
    }
    const spec = await response.json();
    $("version").textContent = "version " + spec.info.version;
    $("description").textContent = spec.info.description || "";
    const ops = $("operations");
    for (const [path, methods] of Object.entries(spec.paths || {})) {
      for (const [method, op] of Object.entries(methods)) ops.appendChild(operation(path, method, op));
    }
    const ws = el("div", "operation");
    const wsTitle = el("h3");
    wsTitle.append(el("span", "method ws", "WS"), " ", el("code", "", "/v1/stream"), " ",
      el("small", "", "webcam frames in, faces out"));
    ws.append(wsTitle, el("p", "", "Send binary JPEG/PNG/WebP frames; each gets one StreamReply (JSON text) with " +
      "track ids and smoothed probabilities. The first message is a hello with the model and classes. Text " +
      "messages are commands: {\"type\": \"reset\"}, {\"type\": \"ping\"}. A frame over the size limit closes " +
      "the connection with code 1009. ?actions=true adds actions; ?prior= (training, web, uniform) sets the class " +
      "prior of the connection's faces, named in the hello; ?token= for browsers when the server has a token."));
    ops.appendChild(ws);
    const schemas = $("schemas");
    for (const [name, schema] of Object.entries((spec.components || {}).schemas || {}).sort()) {
      if (!name.startsWith("Body_")) schemas.appendChild(schemaBox(name, schema));
    }
  }

  main();
})();
