import Testing

@testable import SupervisorCore

struct TOMLParserTests {
    // MARK: Strings

    @Test func basicAndLiteralStrings() throws {
        let t = try TOMLParser.parse(
            #"""
            basic = "hello world"
            literal = 'C:\Users\nodejs\templates'
            empty = ""
            emptyLiteral = ''
            quoteInLiteral = 'Tom "Dubs" Preston-Werner'
            hash = "not # a comment"
            unicode = "Grüße, 世界"
            """#)
        #expect(t.value("basic") == .string("hello world"))
        #expect(t.value("literal") == .string(#"C:\Users\nodejs\templates"#))
        #expect(t.value("empty") == .string(""))
        #expect(t.value("emptyLiteral") == .string(""))
        #expect(t.value("quoteInLiteral") == .string(#"Tom "Dubs" Preston-Werner"#))
        #expect(t.value("hash") == .string("not # a comment"))
        #expect(t.value("unicode") == .string("Grüße, 世界"))
    }

    @Test func escapesInBasicStrings() throws {
        let t = try TOMLParser.parse(
            #"""
            s = "tab\there\nnew \"quoted\" back\\slash \b\f\r end"
            u = "\u00E9 \U0001F600 \u0041"
            lit = 'no \n escapes \t here'
            """#)
        #expect(t.value("s") == .string("tab\there\nnew \"quoted\" back\\slash \u{08}\u{0C}\r end"))
        #expect(t.value("u") == .string("é 😀 A"))
        #expect(t.value("lit") == .string(#"no \n escapes \t here"#))
    }

    @Test func multiLineBasicStrings() throws {
        let t = try TOMLParser.parse(
            #"""
            a = """
            Roses are red
            Violets are blue"""
            b = """one "two" three"""
            c = """\
                The quick brown \
                fox jumps over \
                the lazy dog.\
                """
            d = """tab\tand\nnewline"""
            after = 1
            """#)
        // The newline right after the opening delimiter is trimmed.
        #expect(t.value("a") == .string("Roses are red\nViolets are blue"))
        #expect(t.value("b") == .string(#"one "two" three"#))
        // A line-ending backslash trims the newline and the whitespace that follows.
        #expect(t.value("c") == .string("The quick brown fox jumps over the lazy dog."))
        #expect(t.value("d") == .string("tab\tand\nnewline"))
        // Lines keep counting through multi-line strings.
        #expect(t["after"]?.line == 11)
        #expect(t["c"]?.line == 5)
        #expect(t["d"]?.line == 10)
    }

    @Test func multiLineLiteralStrings() throws {
        let t = try TOMLParser.parse(
            #"""
            regex = '''I [dw]on't need \d{2} apples'''
            lines = '''
            The first newline is
            trimmed in raw strings.
               All other whitespace
               is preserved.
            '''
            next = true
            """#)
        #expect(t.value("regex") == .string(#"I [dw]on't need \d{2} apples"#))
        #expect(
            t.value("lines")
                == .string("The first newline is\ntrimmed in raw strings.\n   All other whitespace\n   is preserved.\n")
        )
        #expect(t["next"]?.line == 8)
    }

    /// TOML: one or two quotes may sit right before the closing delimiter of a multi-line string.
    @Test func quotesRightBeforeTheClosingDelimiter() throws {
        let t = try TOMLParser.parse(
            #"""
            str7 = """"This," she said, "is just a pointless statement.""""
            lit = '''That,' she said, 'is still pointless.''''
            """#)
        #expect(t.value("str7") == .string(#""This," she said, "is just a pointless statement.""#))
        #expect(t.value("lit") == .string("That,' she said, 'is still pointless.'"))
    }

    // MARK: Numbers and booleans

    @Test func integers() throws {
        let t = try TOMLParser.parse(
            """
            a = 42
            b = +17
            c = -17
            d = 0
            e = 1_000_000
            f = 0xDEADBEEF
            g = 0xdead_beef
            h = 0o755
            i = 0b1101_0110
            j = 9223372036854775807
            k = -9223372036854775808
            l = -0
            m = +0
            """)
        #expect(t.value("a") == .integer(42))
        #expect(t.value("b") == .integer(17))
        #expect(t.value("c") == .integer(-17))
        #expect(t.value("d") == .integer(0))
        #expect(t.value("e") == .integer(1_000_000))
        #expect(t.value("f") == .integer(3_735_928_559))
        #expect(t.value("g") == .integer(3_735_928_559))
        #expect(t.value("h") == .integer(493))
        #expect(t.value("i") == .integer(214))
        #expect(t.value("j") == .integer(Int64.max))
        #expect(t.value("k") == .integer(Int64.min))
        #expect(t.value("l") == .integer(0))
        #expect(t.value("m") == .integer(0))
    }

    @Test func floats() throws {
        let t = try TOMLParser.parse(
            """
            a = 1.0
            b = 3.1415
            c = -0.01
            d = 5e+22
            e = 1e06
            f = -2E-2
            g = 6.626e-34
            h = 224_617.445_991_228
            i = +1.5
            """)
        #expect(t.value("a") == .float(1.0))
        #expect(t.value("b") == .float(3.1415))
        #expect(t.value("c") == .float(-0.01))
        #expect(t.value("d") == .float(5e22))
        #expect(t.value("e") == .float(1e6))
        #expect(t.value("f") == .float(-0.02))
        #expect(t.value("g") == .float(6.626e-34))
        #expect(t.value("h") == .float(224_617.445_991_228))
        #expect(t.value("i") == .float(1.5))
    }

    @Test func infinityAndNaN() throws {
        let t = try TOMLParser.parse(
            """
            a = inf
            b = +inf
            c = -inf
            d = nan
            e = +nan
            f = -nan
            """)
        #expect(t.value("a") == .float(.infinity))
        #expect(t.value("b") == .float(.infinity))
        #expect(t.value("c") == .float(-.infinity))
        for k in ["d", "e", "f"] {
            let d = try #require(t.value(k)?.doubleValue, "\(k) should be a float")
            #expect(d.isNaN)
        }
    }

    @Test func booleans() throws {
        let t = try TOMLParser.parse("yes = true\nno = false\n")
        #expect(t.value("yes") == .bool(true))
        #expect(t.value("no") == .bool(false))
    }

    @Test(arguments: [
        "x = 12a",  // garbage in a number
        "x = 1__000",  // double underscore
        "x = _1000",  // leading underscore
        "x = 1000_",  // trailing underscore
        "x = 0123",  // leading zero
        "x = 1.",  // no digit after the point
        "x = .5",  // no digit before the point
        "x = 0xZZ",  // bad hex digit
        "x = 0b102",  // bad binary digit
        "x = 0o8",  // bad octal digit
        "x = 0xFFFFFFFFFFFFFFFF",  // hex out of Int64
        "x = tru",  // not a boolean
        "x = True",  // booleans are lowercase
        "x = bare",  // a string without quotes
        "x = -",
        "x = +",
    ])
    func rejectsBadNumbersAndBareWords(_ text: String) throws {
        let e = try #require(tomlError("a = 1\n" + text + "\nb = 2\n"))
        #expect(e.line == 2)
    }

    /// TOML: "If an integer cannot be represented losslessly, an error must be thrown."
    @Test func integerOverflowIsAnError() {
        // Regression test (fixed): Int64 parsing fails and the text falls through to Double, so the value silently becomes
        // the float 9.223372036854776e18 instead of an error.
        #expect(tomlError("x = 9223372036854775808\n")?.line == 1)
        #expect(tomlError("x = -9223372036854775809\n")?.line == 1)
    }

    /// Number spellings TOML forbids but Swift's `Double(_:)` accepts.
    @Test(arguments: ["x = infinity", "x = Infinity", "x = INF", "x = NaN", "x = 01.5", "x = -0x10", "x = 1.e5"])
    func rejectsFloatSpellingsTOMLForbids(_ text: String) {
        // Regression test (fixed): after Int64 and the inf/nan spellings fail, the raw text goes to Swift's `Double(_:)`, which
        // accepts "infinity", any letter case of inf/nan, hex floats and leading zeros; TOML allows none of them.
        #expect(tomlError(text + "\n")?.line == 1)
    }

    // MARK: Arrays and inline tables

    @Test func arrays() throws {
        let t = try TOMLParser.parse(
            """
            ints = [1, 2, 3]
            empty = []
            strings = ["red", 'yellow', \"""green\"""]
            nested = [[1, 2], ["a", "b"]]
            mixed = [0.1, "x", true, { k = 1 }]
            multi = [
              1,  # one
              2,
              # a comment line
              3,  # trailing comma is allowed
            ]
            after = "x"
            """)
        #expect(t.value("ints") == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(t.value("empty") == .array([]))
        #expect(t.value("strings") == .array([.string("red"), .string("yellow"), .string("green")]))
        #expect(
            t.value("nested")
                == .array([.array([.integer(1), .integer(2)]), .array([.string("a"), .string("b")])]))
        let mixed = try #require(t.value("mixed")?.arrayItems)
        #expect(mixed.count == 4)
        #expect(mixed[0] == .float(0.1))
        #expect(mixed[1] == .string("x"))
        #expect(mixed[2] == .bool(true))
        #expect(mixed[3].tableValue?.value("k") == .integer(1))
        #expect(t.value("multi") == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(t["multi"]?.line == 6)
        #expect(t["after"]?.line == 12)
    }

    @Test func inlineTables() throws {
        let t = try TOMLParser.parse(
            """
            name = { first = "Tom", last = "Preston-Werner" }
            point = { x = 1, y = 2 }
            animal = { type.name = "pug" }
            deep = { a = { b = { c = true } } }
            empty = {}
            """)
        #expect(t.value("name", "first") == .string("Tom"))
        #expect(t.value("name", "last") == .string("Preston-Werner"))
        #expect(t.table("name")?.keys == ["first", "last"])
        #expect(t.value("point", "x") == .integer(1))
        #expect(t.value("point", "y") == .integer(2))
        #expect(t.value("animal", "type", "name") == .string("pug"))
        #expect(t.value("deep", "a", "b", "c") == .bool(true))
        #expect(t.table("empty")?.entries.isEmpty == true)
    }

    @Test(arguments: [
        "x = { a = 1, a = 2 }",  // duplicate key
        "x = { a = 1, }",  // trailing comma (not allowed in TOML 1.0 inline tables)
        "x = { a = 1",  // unterminated
        "x = { a 1 }",  // missing '='
        "x = { a = 1 b = 2 }",  // missing ','
    ])
    func rejectsBadInlineTables(_ text: String) throws {
        let e = try #require(tomlError("ok = 1\n\n" + text + "\n"))
        #expect(e.line == 3)
    }

    @Test(arguments: ["x = [1 2]", "x = [,]", "x = [1,,2]", "x = [1; 2]"])
    func rejectsBadArrays(_ text: String) throws {
        #expect(tomlError("ok = 1\n" + text + "\nz = 1\n")?.line == 2)
    }

    @Test func rejectsUnterminatedArray() throws {
        let e = try #require(tomlError("ok = 1\nx = [1, 2\n"))
        #expect(e.message.contains("unterminated"))
    }

    @Test func badArraySeparatorReportsItsLine() throws {
        let e = try #require(tomlError("x = [\n  1,\n  2\n  3,\n]\n"))
        #expect(e.line == 4)
    }

    // MARK: Keys and tables

    @Test func bareQuotedAndDottedKeys() throws {
        let t = try TOMLParser.parse(
            #"""
            bare_key = 1
            bare-key = 2
            1234 = 3
            "127.0.0.1" = 4
            "character encoding" = 5
            'quoted "value"' = 6
            physical.color = "orange"
            physical.shape = "round"
            site."google.com" = true
            a . b . c = 7
            """#)
        #expect(t.value("bare_key") == .integer(1))
        #expect(t.value("bare-key") == .integer(2))
        #expect(t.value("1234") == .integer(3))
        #expect(t.value("127.0.0.1") == .integer(4))
        #expect(t.value("character encoding") == .integer(5))
        #expect(t.value(#"quoted "value""#) == .integer(6))
        #expect(t.value("physical", "color") == .string("orange"))
        #expect(t.value("physical", "shape") == .string("round"))
        #expect(t.value("site", "google.com") == .bool(true))
        #expect(t.value("a", "b", "c") == .integer(7))
        // File order is kept.
        #expect(
            t.keys == [
                "bare_key", "bare-key", "1234", "127.0.0.1", "character encoding", #"quoted "value""#, "physical",
                "site", "a",
            ])
    }

    @Test func tableHeaders() throws {
        let t = try TOMLParser.parse(
            """
            top = 0

            [table-1]
            key1 = "some string"
            key2 = 123

            [dog."tater.man"]
            type.name = "pug"

            [ x . y . z ]   # whitespace around the dots
            w = 1

            [table-1.sub]
            k = true
            """)
        #expect(t.value("top") == .integer(0))
        #expect(t.value("table-1", "key1") == .string("some string"))
        #expect(t.value("table-1", "key2") == .integer(123))
        #expect(t.value("table-1", "sub", "k") == .bool(true))
        #expect(t.value("dog", "tater.man", "type", "name") == .string("pug"))
        #expect(t.value("x", "y", "z", "w") == .integer(1))
        // Lines: a table's own line is its header; entries have theirs.
        #expect(t.table("table-1")?.line == 3)
        #expect(t.table("table-1")?["key2"]?.line == 5)
        #expect(t.table("x", "y", "z")?.line == 10)
        #expect(t.table("table-1", "sub")?.line == 13)
    }

    @Test func superTableAfterSubTable() throws {
        // TOML allows defining [x] after [x.y.z] as long as it was not defined directly before.
        let t = try TOMLParser.parse("[x.y.z]\na = 1\n[x]\nb = 2\n")
        #expect(t.value("x", "y", "z", "a") == .integer(1))
        #expect(t.value("x", "b") == .integer(2))
    }

    @Test func arraysOfTables() throws {
        let t = try TOMLParser.parse(
            """
            [[products]]
            name = "Hammer"
            sku = 738594937

            [[products]]  # empty table within the array

            [[products]]
            name = "Nail"
            color = "gray"
            """)
        let products = try #require(t.value("products")?.arrayItems)
        #expect(products.count == 3)
        #expect(products[0].tableValue?.value("name") == .string("Hammer"))
        #expect(products[0].tableValue?.value("sku") == .integer(738_594_937))
        #expect(products[1].tableValue?.entries.isEmpty == true)
        #expect(products[2].tableValue?.value("name") == .string("Nail"))
        #expect(products[2].tableValue?.value("color") == .string("gray"))
        #expect(products[2].tableValue?.line == 7)
        #expect(products[0].tableValue?["sku"]?.line == 3)
    }

    @Test func nestedArraysOfTablesAndSubTables() throws {
        let t = try TOMLParser.parse(
            """
            [[fruits]]
            name = "apple"

            [fruits.physical]
            color = "red"

            [[fruits.varieties]]
            name = "red delicious"

            [[fruits.varieties]]
            name = "granny smith"

            [[fruits]]
            name = "banana"

            [[fruits.varieties]]
            name = "plantain"
            """)
        let fruits = try #require(t.value("fruits")?.arrayItems)
        #expect(fruits.count == 2)
        let apple = try #require(fruits[0].tableValue)
        #expect(apple.value("name") == .string("apple"))
        #expect(apple.value("physical", "color") == .string("red"))
        #expect(
            apple.value("varieties")?.arrayItems?.compactMap { $0.tableValue?.value("name") } == [
                .string("red delicious"), .string("granny smith"),
            ])
        let banana = try #require(fruits[1].tableValue)
        #expect(banana.value("name") == .string("banana"))
        #expect(banana.value("physical") == nil)
        #expect(
            banana.value("varieties")?.arrayItems?.compactMap { $0.tableValue?.value("name") } == [.string("plantain")])
    }

    /// Each element of an array of tables is a new table, so each may have its own `[fruits.physical]`.
    @Test func sameSubTableInEachArrayElement() throws {
        let t = try TOMLParser.parse(
            """
            [[fruits]]
            name = "apple"
            [fruits.physical]
            color = "red"

            [[fruits]]
            name = "banana"
            [fruits.physical]
            color = "yellow"
            """)
        let fruits = t.value("fruits")?.arrayItems
        #expect(fruits?.count == 2)
        #expect(fruits?.last?.tableValue?.value("physical", "color") == .string("yellow"))
    }

    /// `["a.b"]` is a table named `a.b` at the top level; `[a.b]` is table `b` inside `a`. They are different.
    @Test func quotedDottedTableNameIsNotTheNestedTable() throws {
        let t = try TOMLParser.parse("[\"a.b\"]\nx = 1\n[a.b]\ny = 2\n")
        #expect(t.value("a.b", "x") == .integer(1))
        #expect(t.value("a", "b", "y") == .integer(2))
    }

    // MARK: Comments, blank lines, line endings

    @Test func commentsAndBlankLines() throws {
        let t = try TOMLParser.parse(
            """
            # This is a full-line comment
            key = "value"  # This is a comment at the end of a line
               # indented comment = "not a key"

            [t] # comment after a header
            k = 1#no space
            arr = [ # comment inside an array
              1 ]
            # trailing comment without newline
            """)
        #expect(t.keys == ["key", "t"])
        #expect(t.value("key") == .string("value"))
        #expect(t.value("t", "k") == .integer(1))
        #expect(t.value("t", "arr") == .array([.integer(1)]))
        #expect(t["key"]?.line == 2)
        #expect(t.table("t")?.line == 5)
        #expect(t.table("t")?["arr"]?.line == 7)
    }

    @Test func emptyDocument() throws {
        #expect(try TOMLParser.parse("").entries.isEmpty)
        #expect(try TOMLParser.parse("\n\n# only a comment\n   \n").entries.isEmpty)
    }

    @Test func crlfLineEndings() throws {
        let t = try TOMLParser.parse("a = 1\r\nb = \"x\"\r\n\r\n[t]\r\nc = true\r\n")
        #expect(t.value("a") == .integer(1))
        #expect(t.value("b") == .string("x"))
        #expect(t.value("t", "c") == .bool(true))
        #expect(t.table("t")?["c"]?.line == 5)
    }

    // MARK: Errors and their lines

    @Test func duplicateKeyReportsTheSecondLine() throws {
        let e = try #require(tomlError("name = \"a\"\nport = 1\n\nname = \"b\"\n"))
        #expect(e.line == 4)
        #expect(e.message.contains("name"))
        #expect(e.message.contains("1"), "the message should point at the first definition")
    }

    @Test func duplicateKeyInsideATable() throws {
        let e = try #require(tomlError("[a]\nx = 1\ny = 2\n[b]\nx = 1\n[c]\n\nz = 1\nz = 2\n"))
        #expect(e.line == 9)
    }

    @Test func quotedAndBareSpellingsAreTheSameKey() throws {
        #expect(tomlError("spelling = 1\n\"spelling\" = 2\n")?.line == 2)
        #expect(tomlError("a.b = 1\n'a'.\"b\" = 2\n")?.line == 2)
    }

    @Test func duplicateDottedKey() throws {
        let e = try #require(tomlError("a.b = 1\na.c = 2\na.b = 3\n"))
        #expect(e.line == 3)
    }

    @Test func keyAlreadyHoldingAValueCannotBecomeATable() throws {
        #expect(tomlError("a = 1\na.b = 2\n")?.line == 2)
        #expect(tomlError("a = 1\n\n[a]\nb = 2\n")?.line == 3)
        #expect(tomlError("a = 1\n[a.b]\n")?.line == 2)
    }

    @Test func duplicateTableReportsTheSecondHeader() throws {
        let e = try #require(tomlError("[server]\nport = 1\n\n[other]\n\n[server]\nreplicas = 2\n"))
        #expect(e.line == 6)
        #expect(e.message.contains("server"))
        #expect(tomlError("[a.b]\n[a]\n[a.b]\n")?.line == 3)
    }

    @Test func tableAndArrayOfTablesCannotShareAName() throws {
        #expect(tomlError("[a]\nx = 1\n[[a]]\n")?.line == 3)
        #expect(tomlError("[[a]]\nx = 1\n[a]\n")?.line == 3)
    }

    /// Inline tables are complete: a later header or dotted key must not add to them (TOML spec).
    @Test(arguments: [
        "x = { a = 1 }\n[x]\nb = 2\n",
        "x = { a = 1 }\nx.b = 2\n",
    ])
    func inlineTablesCannotBeExtended(_ text: String) {
        // Known issue: `withTable` walks into any table, inline or not, so both documents are accepted and `b`
        // is added to the inline table.
        withKnownIssue("an inline table can be extended after its braces") {
            #expect(tomlError(text)?.line == 2)
        }
    }

    /// A table defined by dotted keys cannot be defined again with a header (TOML spec: `[fruit.apple]` INVALID).
    @Test func dottedKeyTableCannotBeRedefinedByHeader() {
        withKnownIssue("[fruit.apple] after fruit.apple.color = ... is accepted") {
            #expect(tomlError("[fruit]\napple.color = \"red\"\n\n[fruit.apple]\ntaste = 1\n")?.line == 4)
        }
    }

    /// A static array cannot be appended to with `[[name]]` (TOML spec).
    @Test func staticArrayCannotBeAppendedTo() {
        withKnownIssue("[[fruits]] appends to a static array fruits = [] instead of failing") {
            #expect(tomlError("fruits = []\n\n[[fruits]]\nname = \"x\"\n")?.line == 3)
        }
    }

    @Test(arguments: [
        ("x = \"abc\n", 1),  // basic string ends at the newline
        ("a = 1\nx = 'abc\ny = 2\n", 2),  // literal string
        ("a = 1\n\nx = \"abc", 3),  // end of file
        ("a = 1\nx = \"abc\\\"\n", 2),  // the escaped quote does not close it
    ])
    func unterminatedString(_ text: String, _ line: Int) throws {
        let e = try #require(tomlError(text))
        #expect(e.line == line)
        #expect(e.message.contains("unterminated"))
    }

    @Test func unterminatedMultiLineStrings() throws {
        #expect(tomlError("a = 1\nx = \"\"\"abc\n\ndef\n") != nil)
        #expect(tomlError("a = 1\nx = '''abc\n\ndef\n") != nil)
    }

    @Test func missingEquals() throws {
        #expect(tomlError("a = 1\nname \"x\"\n")?.line == 2)
        #expect(tomlError("a = 1\n\nname\n= \"x\"\n")?.line == 3)
        #expect(tomlError("[t]\nx : 1\n")?.line == 2)
        #expect(tomlError("a = 1\n= 2\n")?.line == 2)
    }

    @Test func missingValue() throws {
        #expect(tomlError("a = 1\nb =\n")?.line == 2)
        #expect(tomlError("a = 1\nb = # nothing\n")?.line == 2)
    }

    @Test(arguments: [
        "d = 1979-05-27",
        "d = 1979-05-27T07:32:00Z",
        "d = 1979-05-27T00:32:00.999999-07:00",
        "d = 1979-05-27 07:32:00",
        "d = 07:32:00",
    ])
    func datesAreAClearError(_ text: String) throws {
        let e = try #require(tomlError("# header comment\nx = 1\n" + text + "\ny = 2\n"))
        #expect(e.line == 3)
        #expect(e.message.contains("date"))
    }

    @Test(arguments: [
        "x = 1 2",
        "x = \"a\" \"b\"",
        "x = true false",
        "x = [1] ]",
        "x = { a = 1 } z",
        "x = 'a' b",
        "x = \"\"\"a\"\"\" b",
    ])
    func garbageAfterAValue(_ text: String) throws {
        let e = try #require(tomlError("a = 1\n\n" + text + "\nb = 2\n"))
        #expect(e.line == 3)
    }

    @Test func garbageAfterAValueFollowingAMultiLineString() throws {
        #expect(tomlError("x = \"\"\"\none\ntwo\"\"\" junk\n")?.line == 3)
    }

    @Test func garbageAfterAHeader() throws {
        #expect(tomlError("a = 1\n[t] x = 1\n")?.line == 2)
        #expect(tomlError("a = 1\n[t\n")?.line == 2)
        #expect(tomlError("a = 1\n[[t]\n")?.line == 2)
        #expect(tomlError("a = 1\n[]\n")?.line == 2)
    }

    @Test(arguments: [
        "x = \"\\x41\"",  // \x is not a TOML escape
        "x = \"\\uD800\"",  // a surrogate is not a scalar
        "x = \"\\u12\"",  // too short
        "x = \"\\ \"",  // line-ending backslash only in multi-line strings
        "x = \"a\u{01}b\"",  // control character
    ])
    func invalidEscapesAndControlCharacters(_ text: String) throws {
        let e = try #require(tomlError("a = 1\n" + text + "\n"))
        #expect(e.line == 2)
    }

    @Test func errorLineCountsMultiLineValuesBeforeIt() throws {
        let text = """
            a = [
              1,
              2,
            ]
            s = \"""
            x
            y\"""
            bad = 1979-05-27
            """
        #expect(tomlError(text)?.line == 8)
    }

    @Test func errorDescriptionNamesTheLine() {
        #expect(TOMLError(line: 7, message: "boom").description == "line 7: boom")
    }

    @Test func valueTypeNames() {
        // Each type has a distinct, article-prefixed name for "must be X, not Y" messages.
        let names = [
            TOMLValue.string(""), .integer(0), .float(0), .bool(true), .array([]), .table(TOMLTable(line: 1)),
        ].map(\.typeName)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { $0.hasPrefix("a ") || $0.hasPrefix("an ") })
    }
}
