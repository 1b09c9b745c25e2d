// The node tree the parser builds and the evaluator walks: expressions and statements as plain
// structs, children owned by unique pointers.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/value.h"

namespace corral::jinja {

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  enum class K {
    kLit, kName, kList, kTuple, kDict, kAttr, kItem, kSlice, kCall, kFilter, kTest,
    kNeg, kPos, kNot, kBin, kCmp, kAnd, kOr, kCond, kConcat
  };
  K k = K::kLit;
  int line = 0;
  Value lit;                 // kLit
  std::string name;          // kName, kAttr, kFilter, kTest: the name; kBin: the operator
  std::vector<ExprP> c;      // children (see parser.cpp for each kind's layout); may hold null
  std::vector<std::pair<std::string, ExprP>> kw;  // keyword arguments of kCall/kFilter/kTest
  std::vector<std::string> ops;                   // kCmp: the operator before c[i + 1]
  bool negated = false;                           // kTest: `is not`
};

struct Stmt;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;

struct Stmt {
  enum class K { kText, kPrint, kIf, kFor, kSet, kSetBlock, kMacro, kCallBlock, kFilterBlock, kWith, kBreak, kContinue, kBlock };
  K k = K::kText;
  int line = 0;
  std::string text;                       // kText; kMacro: its name; kSet on an attribute: the attribute
  ExprP e;                                // kPrint, kSet value, kFor iterable, kCallBlock call
  ExprP cond;                             // kFor: the `if` filter
  std::vector<std::string> targets;       // kFor, kSet, kSetBlock names (kSet attr: the namespace)
  std::vector<std::pair<ExprP, Body>> branches;  // kIf: (test, body) for if and each elif
  Body body, else_body;
  std::vector<std::string> params;        // kMacro, kCallBlock (caller's), kWith names
  std::vector<ExprP> defaults;            // same length as params; null = none
  std::vector<ExprP> filters;             // kFilterBlock, kSetBlock: filters with no subject
  bool recursive = false;
};

struct Program {
  std::string name;
  Body body;
};

}  // namespace corral::jinja
