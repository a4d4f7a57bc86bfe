// CSV export done in the browser, safe to open in a spreadsheet.
//
// A cell that starts with = + - @, a tab or a carriage return is read by
// spreadsheet programs as a formula ("CSV injection", OWASP); a queue or agent
// name could be made to start that way. Such cells get a leading apostrophe,
// which makes the spreadsheet show the text as typed.

const FORMULA_START = /^[=+\-@\t\r]/;

/** One cell: defused, then quoted as RFC 4180 asks when it holds a comma, quote or line break. */
export function csvCell(value) {
  if (value == null) return "";
  let text = String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The whole file: rows of cells, CRLF line ends, with a BOM so spreadsheets read UTF-8 (Chinese). */
export function csvText(rows) {
  return `\ufeff${rows.map((row) => row.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

/** Offer the rows as a file download. */
export function downloadCsv(filename, rows) {
  const url = URL.createObjectURL(new Blob([csvText(rows)], { type: "text/csv;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked later: the download starts after the click handler returns.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
