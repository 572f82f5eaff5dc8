"""The streaming form parser against python-multipart's, as an oracle: on the kinds of body python-multipart's
own tests cover (preambles, epilogues, boundary look-alikes in the data, CRLF-dense data, header case, UTF-8
filenames, several files, empty parts), and on generated ones, both find the same parts with the same bytes,
whatever the pieces the body arrives in. asgiserve is stricter on purpose where RFC 7578 is (a part without
a name, LF line ends): those bodies it refuses with 400, checked here too."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_multipart.multipart import MultipartParser, parse_options_header

from asgiserve.errors import BadRequest
from asgiserve.multipart import FormParser, Part, parse_form


def oracle(body: bytes, boundary: bytes) -> list[tuple[str, str | None, bytes]]:
    """(name, filename, data) of each part, as python-multipart's streaming parser finds them."""
    parts: list[dict[str, object]] = []
    header: list[bytes] = [b"", b""]

    def begin() -> None:
        parts.append({"headers": {}, "data": b""})

    def field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def header_end() -> None:
        parts[-1]["headers"][header[0].lower()] = header[1]  # type: ignore[index]
        header[:] = [b"", b""]

    def data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]  # type: ignore[operator]

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": field,
        "on_header_value": value,
        "on_header_end": header_end,
        "on_part_data": data,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    parser.write(body)
    parser.finalize()
    out = []
    for part in parts:
        _, options = parse_options_header(part["headers"][b"content-disposition"])  # type: ignore[index]
        filename = options.get(b"filename")
        out.append((options[b"name"].decode(), filename.decode() if filename is not None else None, part["data"]))
    return out


def streamed(body: bytes, boundary: bytes, cuts: list[int]) -> list[tuple[str, str | None, bytes]]:
    """The same from ``FormParser`` fed ``body`` cut at ``cuts``."""
    parser = FormParser(boundary)
    parts: list[Part] = []
    pieces: list[bytes] = []
    edges = [0, *sorted(set(cuts)), len(body)]
    for a, b in itertools.pairwise(edges):
        for event in parser.feed(body[a:b]):
            if isinstance(event, Part):
                parts.append(event)
            elif event is None:
                parts[-1].data = b"".join(pieces)
                pieces.clear()
            else:
                pieces.append(event)
    parser.close()
    return [(p.name, p.filename, p.data) for p in parts]


def part(name: str, data: bytes, filename: str | None = None, extra: bytes = b"", header_case: bytes = b"Content-Disposition") -> bytes:
    disposition = b'%s: form-data; name="%s"' % (header_case, name.encode())
    if filename is not None:
        disposition += b'; filename="%s"' % filename.encode()
    return disposition + b"\r\n" + extra + b"\r\n" + data


def form(boundary: bytes, *parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    delim = b"--" + boundary
    body = (preamble + b"\r\n" if preamble else b"") + delim
    for p in parts:
        body += b"\r\n" + p + b"\r\n" + delim
    return body + b"--" + epilogue


CASES = {
    "single field": form(b"b0", part("field", b"test1")),
    "single file": form(b"b0", part("file", b"This is a test file.", "file.txt", b"Content-Type: text/plain\r\n")),
    "field and file": form(b"b0", part("field", b"test1"), part("file", b"some data\r\nmore", "f.bin")),
    "multiple files": form(b"--b0", *[part(f"file{i}", b"data %d" % i * 40, f"{i}.txt") for i in range(3)]),
    "utf-8 filename": form(b"b0", part("file", "žlutý kůň".encode(), "név.txt")),
    "header case": form(b"b0", part("field", b"x", header_case=b"cOnTeNt-DiSpOsItIoN")),
    "preamble": form(b"b0", part("field", b"x"), preamble=b"This is a preamble\r\n with lines"),
    "epilogue": form(b"b0", part("field", b"x"), epilogue=b"\r\ntrailing junk"),
    "almost the boundary": form(b"boundary", part("file", b"--boundar\r\n--boundar-\r\n--bound\r\n-", "f")),
    "crlf dense": form(b"b0", part("file", b"\r\n" * 50 + b"\r\r\n\n\r", "f")),
    "empty part": form(b"b0", part("field", b"")),
    "leading newlines in data": form(b"b0", part("field", b"\r\n\r\ntext")),
    "empty message": b"--b0--",
    "long data": form(b"XyZ", part("file", bytes(range(256)) * 400, "big.bin")),
}


@pytest.mark.parametrize("name", CASES)
def test_the_parts_match_python_multipart(name):
    body = CASES[name]
    boundary = b"XyZ" if name == "long data" else b"--b0" if name == "multiple files" else b"boundary" if "almost" in name else b"b0"
    # python-multipart refuses a preamble, which RFC 2046 5.1.1 allows: compare with the body without it.
    expected = oracle(form(b"b0", part("field", b"x")) if name == "preamble" else body, boundary)
    assert streamed(body, boundary, []) == expected
    assert [(p.name, p.filename, p.data) for p in parse_form(body, b"multipart/form-data; boundary=" + boundary)] == expected
    # One byte at a time: every split point at once.
    assert streamed(body, boundary, list(range(1, len(body)))) == expected


# RFC 7578: every part has a name, and lines end with CRLF; python-multipart is lenient there.
STRICT = {
    "no name": b'--b0\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0--',
    "no closing delimiter": b'--b0\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n',
    "no first delimiter": b"just text",
    "bad boundary line": b'--b0xx\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b0--',
    # RFC 2046 5.1.1: the delimiter must not occur in a part; python-multipart reads on as data.
    "the delimiter in the data": b'--b0\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b0q\r\n--b0--',
}


@pytest.mark.parametrize("name", STRICT)
def test_what_rfc_7578_forbids_is_refused_however_it_arrives(name):
    body = STRICT[name]
    with pytest.raises(BadRequest) as whole:
        parse_form(body, b"multipart/form-data; boundary=b0")
    with pytest.raises(BadRequest) as pieces:
        streamed(body, b"b0", list(range(1, len(body))))
    assert str(whole.value) == str(pieces.value)


names = st.text("abcxyz_", min_size=1, max_size=6)
datas = st.binary(max_size=300) | st.sampled_from([b"\r\n--bound", b"--boundary\r", b"\r\n\r\n", b"-" * 80])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(names, datas, st.none() | names), min_size=1, max_size=5),
    st.lists(st.integers(min_value=1, max_value=2000), max_size=8),
)
def test_generated_forms_match_python_multipart_in_any_pieces(spec, cuts):
    boundary = b"boundary"
    body = form(boundary, *[part(n, d, f) for n, d, f in spec])
    expected = oracle(body, boundary)
    assert expected == [(n, f, d) for n, d, f in spec]
    assert streamed(body, boundary, [c for c in cuts if c < len(body)]) == expected
