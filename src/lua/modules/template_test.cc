#include <gtest/gtest.h>

#include <fstream>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

// Renders with `args` (Lua source for the arguments after the template) and returns the result.
std::string Render(LuaEnv& env, const std::string& tmpl, const std::string& args = "{}") {
  return env.Eval("template.render([==[" + tmpl + "]==], " + args + ")");
}

TEST(TemplateTest, RendersVariablesAndListSections) {
  LuaEnv env;
  EXPECT_EQ(
      Render(env, "Hi {{name}}, {{#items}}[{{.}}]{{/items}}", "{name = 'Ana', items = {'x', 'y'}}"),
      "Hi Ana, [x][y]");
  EXPECT_EQ(Render(env, "{{#items}}\n- {{.}}\n{{/items}}\ndone\n", "{items = {'x', 'y'}}"),
            "- x\n- y\ndone\n");
  EXPECT_EQ(Render(env, "[{{missing}}]"), "[]");
}

TEST(TemplateTest, DoesNoHtmlEscaping) {
  LuaEnv env;
  const std::string vars = R"({x = [[<a href="q">&'</a>]]})";
  EXPECT_EQ(Render(env, "{{x}}", vars), R"(<a href="q">&'</a>)");
  EXPECT_EQ(Render(env, "{{{x}}}", vars), R"(<a href="q">&'</a>)");
  EXPECT_EQ(Render(env, "{{&x}}", vars), R"(<a href="q">&'</a>)");
}

TEST(TemplateTest, AcceptsGoTemplateStyleNames) {
  LuaEnv env;
  const std::string vars = "{name = 'web', server = {port = 80}, items = {'a', 'b'}}";
  EXPECT_EQ(Render(env, "{{.name}}:{{ .server.port }}", vars), "web:80");
  EXPECT_EQ(Render(env, "{{#.items}}{{.}}{{/.items}}", vars), "ab");
  EXPECT_EQ(Render(env, "{{{.name}}}{{&.name}}", vars), "webweb");
}

TEST(TemplateTest, SectionsOverMapsDottedNamesAndInvertedSections) {
  LuaEnv env;
  const std::string vars = "{server = {host = 'h', port = 8080}, empty = {}, off = false}";
  EXPECT_EQ(Render(env, "{{#server}}{{host}}:{{port}}{{/server}}", vars), "h:8080");
  EXPECT_EQ(Render(env, "{{server.host}}", vars), "h");
  EXPECT_EQ(Render(env, "{{^empty}}none{{/empty}}{{#empty}}some{{/empty}}", vars), "none");
  EXPECT_EQ(Render(env, "{{^off}}off{{/off}}{{^nothing}}absent{{/nothing}}", vars), "offabsent");
  EXPECT_EQ(Render(env, "{{^server}}x{{/server}}", vars), "");
}

TEST(TemplateTest, BooleansAndNumbersPrintAsLuaWouldWithoutTrailingZero) {
  LuaEnv env;
  const std::string vars =
      "{on = true, off = false, port = 8080, ratio = 2.5, half = 8 / 2, n = data.null}";
  EXPECT_EQ(Render(env, "{{on}} {{off}} {{#on}}yes{{/on}}{{#off}}no{{/off}}", vars),
            "true false yes");
  EXPECT_EQ(Render(env, "{{port}} {{ratio}} {{half}}", vars), "8080 2.5 4");
  EXPECT_EQ(Render(env, "[{{n}}]{{^n}}null{{/n}}", vars), "[]null");
  EXPECT_EQ(Render(env, "{{#flags}}{{.}},{{/flags}}", "{flags = {true, false}}"), "true,false,");
}

TEST(TemplateTest, CommentsPartialsAndDelimiters) {
  LuaEnv env;
  EXPECT_EQ(Render(env, "a{{! not shown }}b"), "ab");
  EXPECT_EQ(
      Render(env, "{{>header}}body {{>missing}}", "{title = 'T'}, {header = '# {{.title}}\\n'}"),
      "# T\nbody ");
  EXPECT_EQ(Render(env, "{{#users}}{{>user}};{{/users}}",
                   "{users = {{name = 'a', admin = true}, {name = 'b', admin = false}}}, "
                   "{user = '{{name}}={{admin}}'}"),
            "a=true;b=false;");
  EXPECT_EQ(Render(env, "{{=<% %>=}}<% name %> {{kept}} <%flag%>", "{name = 'n', flag = true}"),
            "n {{kept}} true");
}

// Lines holding only a section, comment, partial or delimiter tag leave no blank line, whether
// the section renders or not; other blank lines stay.
TEST(TemplateTest, StandaloneTagLinesVanish) {
  LuaEnv env;
  const std::string section = "a\n{{#x}}\nb\n{{/x}}\n\nc\n";
  EXPECT_EQ(Render(env, section, "{x = true}"), "a\nb\n\nc\n");
  EXPECT_EQ(Render(env, section, "{x = false}"), "a\n\nc\n");
  EXPECT_EQ(Render(env, "  {{^x}}\n  none\n  {{/x}}\nend\n", "{x = true}"), "end\n");
  EXPECT_EQ(Render(env, "  {{^x}}\n  none\n  {{/x}}\nend\n", "{x = {}}"), "  none\nend\n");
  EXPECT_EQ(Render(env, "a\n{{! note }}\nb\n"), "a\nb\n");
  EXPECT_EQ(Render(env, "{{>p}}\nb\n", "{}, {p = 'line\\n'}"), "line\nb\n");
  EXPECT_EQ(Render(env, "{{>none}}\nb\n"), "b\n");
  EXPECT_EQ(Render(env, "{{=<% %>=}}\n<%x%>\n", "{x = 1}"), "1\n");
  EXPECT_EQ(Render(env, "x {{#f}}y{{/f}} z\n", "{f = false}"), "x  z\n");
}

TEST(TemplateTest, MalformedTemplatesRaiseWithLineAndColumn) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("select(2, pcall(template.render, 'a\\n  {{#items}}b'))"),
            "template.render: line 2, column 3: Unclosed section \"items\"");
  EXPECT_EQ(env.Eval("select(2, pcall(template.render, '{{x}} {{y'))"),
            "template.render: line 1, column 7: Unclosed tag");
  EXPECT_EQ(env.Eval("select(2, pcall(template.render, '{{.a}}{{/a}}'))"),
            "template.render: line 1, column 7: Unopened section \"a\"");
  EXPECT_NE(env.Eval("select(2, pcall(template.render, 'x', {}, {p = '{{#a}}'}))")
                .find("partial 'p': line 1, column 1: Unclosed section"),
            std::string::npos);
  EXPECT_NE(
      env.Eval("select(2, pcall(template.render, '{{>a}}', {}, {a = '{{>b}}', b = '{{>a}}'}))")
          .find("partial 'a' includes itself (a > b > a)"),
      std::string::npos);
}

TEST(TemplateTest, BadArgumentsRaise) {
  LuaEnv env;
  EXPECT_NE(env.Eval("select(2, pcall(template.render, 'x', 5))").find("bad argument #2"),
            std::string::npos);
  EXPECT_NE(
      env.Eval("select(2, pcall(template.render, 'x', {}, {p = 5}))").find("partials must map"),
      std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(function() local t = {}; t.t = t; "
                     "return template.render('x', t) end))")
                .find("contains itself"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(function() local t = {} for _ = 1, 200 do t = {t} end "
                     "return template.render('x', {t = t}) end))")
                .find("nested too deeply"),
            std::string::npos);
}

TEST(TemplateTest, RenderFileResolvesAgainstTheWorkdir) {
  LuaEnv env;
  std::ofstream(env.dir() + "/app.conf.tmpl") << "listen {{port}}\n{{#debug}}debug on\n{{/debug}}";
  std::ofstream(env.dir() + "/broken.tmpl") << "{{#a}}";
  EXPECT_EQ(env.Eval("template.render_file('app.conf.tmpl', {port = 80, debug = true})"),
            "listen 80\ndebug on\n");
  EXPECT_EQ(env.Eval("template.render_file('" + env.dir() + "/app.conf.tmpl', {port = 81})"),
            "listen 81\n");
  ASSERT_EQ(env.Run(R"(
    local v, err = template.render_file("nope.tmpl", {})
    assert(v == nil and err:find("nope.tmpl: No such file or directory"), err)
    v, err = template.render_file(".", {})
    assert(v == nil and err:find("Is a directory"), err)
  )")
                .message(),
            "");
  EXPECT_NE(env.Eval("select(2, pcall(template.render_file, 'broken.tmpl'))")
                .find("broken.tmpl: line 1, column 1: Unclosed section \"a\""),
            std::string::npos);
}

}  // namespace sloth
