// Realm set-up for write validators and read filters (threads-reducer, src/js).
//
// Evaluated once per JsRuntime, in strict mode, before any user code. It receives `charge`, a
// host function that adds work units to the step meter (and throws a RangeError once the budget
// is spent), and returns the helpers the host calls. No data is ever spliced into this source.
//
// 1. Removes what is non-deterministic, talks to the host or cannot be metered: eval and the
//    Function constructors (no code generation from strings), queueMicrotask, Atomics,
//    SharedArrayBuffer, Math.random, and every source of BigInt values (BigInt arithmetic costs
//    seconds per operation without polling the interrupt counter; BigInt literals are refused at
//    compile time). Date, WeakRef, FinalizationRegistry, performance, timers and Proxy are not
//    installed at all.
// 2. Meters bulk built-ins whose native loops do not poll the interrupt counter: they charge one
//    unit per element before running, so `Array.prototype.reverse.call({length: 2 ** 53})` or a
//    loop over `bigString.split("")` end with a step budget error instead of hanging. The
//    built-in iterators (and their `next` methods) are re-wrapped in JavaScript so that spread,
//    destructuring, Array.from and typed array constructors take the generic path and poll once
//    per element. flat and flatMap are re-implemented in JavaScript.
// 3. Turns a few inherited data properties into accessors (as SES does) so that ordinary code
//    may still assign `this.name`, `obj.toString`, ... on its own objects once the prototypes
//    are frozen.
// 4. Freezes every object reachable from the global object and from the intrinsics, and the
//    global object itself, so that no call can leave state behind for a later call.
(function (charge) {
  "use strict";

  const G = globalThis;
  const ObjectCtor = Object;
  const gopd = Object.getOwnPropertyDescriptor;
  const defineProperty = Object.defineProperty;
  const getPrototypeOf = Object.getPrototypeOf;
  const freeze = Object.freeze;
  const ownKeys = Reflect.ownKeys;
  const apply = Reflect.apply;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const toStr = String;
  const toNum = Number;
  const floor = Math.floor;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const MAX_LENGTH = 9007199254740991;
  const nativeToWellFormed = String.prototype.toWellFormed;

  // 1. Non-determinism, host hooks, code generation, BigInt.
  delete G.eval;
  delete G.queueMicrotask;
  delete G.Atomics;
  delete G.SharedArrayBuffer;
  delete G.BigInt;
  delete G.BigInt64Array;
  delete G.BigUint64Array;
  delete Math.random;
  const bigDataView = ["getBigInt64", "getBigUint64", "setBigInt64", "setBigUint64"];
  for (let i = 0; i < bigDataView.length; i++) delete DataView.prototype[bigDataView[i]];

  const FunctionProto = Function.prototype;
  const noCodeGeneration = {
    Function() {
      throw new TypeErrorCtor("code generation from strings is not available");
    },
  }.Function;
  defineProperty(noCodeGeneration, "prototype", { value: FunctionProto });
  G.Function = noCodeGeneration;
  FunctionProto.constructor = noCodeGeneration;
  const functionKinds = [
    function* () {},
    async function () {},
    async function* () {},
  ];
  for (let i = 0; i < functionKinds.length; i++) {
    defineProperty(getPrototypeOf(functionKinds[i]), "constructor", { value: noCodeGeneration });
  }

  // 2. Metering of bulk built-ins.
  const ArrayProto = Array.prototype;
  const StringProto = String.prototype;
  const TypedArrayProto = getPrototypeOf(Uint8Array.prototype);
  const typedArrayLength = gopd(TypedArrayProto, "length").get;

  function toLength(x) {
    const n = toNum(x);
    if (!(n > 0)) return 0;
    return n >= MAX_LENGTH ? MAX_LENGTH : floor(n);
  }

  // The `length` the native method is about to read, found without running user code. An
  // accessor (other than the typed array one) could answer differently to the native method, so
  // it is refused, as is a non-primitive value (its valueOf could do the same).
  function lengthOf(value) {
    let o = ObjectCtor(value);
    while (o !== null) {
      const d = gopd(o, "length");
      if (d !== undefined) {
        if ("value" in d) {
          const v = d.value;
          if ((typeof v === "object" && v !== null) || typeof v === "function") {
            throw new TypeErrorCtor("array methods need a primitive length");
          }
          return toLength(v);
        }
        if (d.get === typedArrayLength) return apply(typedArrayLength, value, []);
        throw new TypeErrorCtor("array methods do not accept an accessor length");
      }
      o = getPrototypeOf(o);
    }
    return 0;
  }

  function replaceMethod(holder, key, make) {
    const d = gopd(holder, key);
    if (d === undefined || !("value" in d) || typeof d.value !== "function") return;
    const native = d.value;
    const wrapped = make(native);
    defineProperty(wrapped, "length", { value: native.length });
    defineProperty(wrapped, "name", { value: native.name });
    d.value = wrapped;
    defineProperty(holder, key, d);
  }

  function skip(key, names) {
    return typeof key !== "string" || names.indexOf(key) >= 0;
  }

  // Array.prototype: charge the receiver's length (and, for concat, each argument's).
  const arrayKeys = ownKeys(ArrayProto);
  for (let i = 0; i < arrayKeys.length; i++) {
    const key = arrayKeys[i];
    if (skip(key, ["constructor", "push", "pop", "at", "values", "keys", "entries", "flat",
      "flatMap"])) continue;
    const isConcat = key === "concat";
    replaceMethod(ArrayProto, key, function (native) {
      return {
        m(...args) {
          if (this !== undefined && this !== null) {
            charge(lengthOf(this));
            if (isConcat) {
              for (let j = 0; j < args.length; j++) {
                const a = args[j];
                if ((typeof a === "object" && a !== null) || typeof a === "function") {
                  charge(lengthOf(a));
                }
              }
            }
          }
          return apply(native, this, args);
        },
      }.m;
    });
  }

  // flat and flatMap recurse into nested arrays the wrapper cannot see (a sparse array of length
  // 2 ** 32 - 1 inside would hang the native loop): JavaScript versions, whose loops poll. They
  // always create a plain Array (no species constructor).
  const isArray = Array.isArray;
  function flattenInto(target, source, sourceLength, depth, mapper, thisArg) {
    for (let k = 0; k < sourceLength; k++) {
      if (!(k in source)) continue;
      let element = source[k];
      if (mapper !== undefined) element = apply(mapper, thisArg, [element, k, source]);
      if (depth > 0 && isArray(element)) {
        flattenInto(target, element, lengthOf(element), depth - 1, undefined, undefined);
      } else {
        target[target.length] = element;
      }
    }
  }
  function toObject(v, method) {
    if (v === undefined || v === null) {
      throw new TypeErrorCtor("Array.prototype." + method + " called on null or undefined");
    }
    return ObjectCtor(v);
  }
  const flat = {
    flat(depth) {
      const o = toObject(this, "flat");
      const length = lengthOf(o);
      let d = depth === undefined ? 1 : toNum(depth);
      d = d !== d || d < 0 ? 0 : d === Infinity ? d : floor(d);
      const target = [];
      flattenInto(target, o, length, d, undefined, undefined);
      return target;
    },
    flatMap(mapper, thisArg) {
      const o = toObject(this, "flatMap");
      const length = lengthOf(o);
      if (typeof mapper !== "function") throw new TypeErrorCtor("flatMap mapper is not a function");
      const target = [];
      flattenInto(target, o, length, 1, mapper, thisArg);
      return target;
    },
  };
  defineProperty(flat.flat, "length", { value: 0 });
  defineProperty(flat.flatMap, "length", { value: 1 });
  defineProperty(ArrayProto, "flat", { value: flat.flat });
  defineProperty(ArrayProto, "flatMap", { value: flat.flatMap });

  // %TypedArray%.prototype: charge the receiver's length (and the source's for `set`).
  const typedKeys = ownKeys(TypedArrayProto);
  for (let i = 0; i < typedKeys.length; i++) {
    const key = typedKeys[i];
    if (skip(key, ["constructor", "at", "values", "keys", "entries", "subarray"])) continue;
    const isSet = key === "set";
    replaceMethod(TypedArrayProto, key, function (native) {
      return {
        m(...args) {
          let n = 0;
          try {
            n = apply(typedArrayLength, this, []);
          } catch (e) {
            n = 0; // not a typed array: the native method throws its own TypeError
          }
          charge(n);
          if (isSet) {
            const a = args[0];
            if ((typeof a === "object" && a !== null) || typeof a === "function") {
              charge(lengthOf(a));
            }
          }
          return apply(native, this, args);
        },
      }.m;
    });
  }

  // String.prototype: convert the receiver once, charge its length.
  const stringKeys = ownKeys(StringProto);
  for (let i = 0; i < stringKeys.length; i++) {
    const key = stringKeys[i];
    if (
      skip(key, ["constructor", "toString", "valueOf", "at", "charAt", "charCodeAt", "codePointAt"])
    ) {
      continue;
    }
    replaceMethod(StringProto, key, function (native) {
      return {
        m(...args) {
          if (this === undefined || this === null || typeof this === "symbol") {
            return apply(native, this, args); // throws the native TypeError
          }
          const s = typeof this === "string" ? this : toStr(this);
          charge(s.length);
          return apply(native, s, args);
        },
      }.m;
    });
  }

  // JSON: parse charges the text length, stringify the result length.
  replaceMethod(JSON, "parse", function (native) {
    return {
      parse(text, reviver) {
        if (typeof text === "symbol") return apply(native, JSON, [text]);
        const s = typeof text === "string" ? text : toStr(text);
        charge(s.length);
        return apply(native, JSON, [s, reviver]);
      },
    }.parse;
  });
  replaceMethod(JSON, "stringify", function (native) {
    return {
      stringify(...args) {
        const out = apply(native, JSON, args);
        if (typeof out === "string") charge(out.length);
        return out;
      },
    }.stringify;
  });

  // Iterators: same behaviour, but no longer the intrinsic, so engine fast paths that copy a whole
  // array without polling (spread, Array.from, typed array constructors) take the generic path.
  function rewrapIterator(holder, name, keys) {
    const native = holder[keys[0]];
    if (typeof native !== "function") return;
    const wrapped = {
      [name]() {
        return apply(native, this, []);
      },
    }[name];
    defineProperty(wrapped, "name", { value: native.name });
    for (let i = 0; i < keys.length; i++) {
      const d = gopd(holder, keys[i]);
      d.value = wrapped;
      defineProperty(holder, keys[i], d);
    }
  }
  rewrapIterator(ArrayProto, "values", ["values", Symbol.iterator]);
  rewrapIterator(TypedArrayProto, "values", ["values", Symbol.iterator]);
  rewrapIterator(StringProto, "[Symbol.iterator]", [Symbol.iterator]);
  // The engine calls built-in `next` methods directly, without polling: JavaScript versions.
  function rewrapNext(iterator) {
    replaceMethod(getPrototypeOf(iterator), "next", function (native) {
      return {
        next(...args) {
          return apply(native, this, args);
        },
      }.next;
    });
  }
  rewrapNext([][Symbol.iterator]());
  rewrapNext(""[Symbol.iterator]());
  rewrapNext(new Map()[Symbol.iterator]());
  rewrapNext(new Set()[Symbol.iterator]());
  rewrapNext(/x/[Symbol.matchAll](""));

  // Array.from of an array-like (no iterator) creates one element per unit of length.
  replaceMethod(Array, "from", function (native) {
    return {
      from(...args) {
        const items = args[0];
        if (items !== undefined && items !== null) {
          let n = 0;
          try {
            n = lengthOf(items);
          } catch (e) {
            n = 0; // an accessor length: memory bounds what the native method can do
          }
          charge(n);
        }
        return apply(native, this, args);
      },
    }.from;
  });

  // URI coding functions scan their argument.
  const uriFunctions = ["encodeURI", "encodeURIComponent", "decodeURI", "decodeURIComponent",
    "escape", "unescape"];
  for (let i = 0; i < uriFunctions.length; i++) {
    replaceMethod(G, uriFunctions[i], function (native) {
      return {
        m(x) {
          if (typeof x === "symbol") return apply(native, undefined, [x]);
          const s = typeof x === "string" ? x : toStr(x);
          charge(s.length);
          return apply(native, undefined, [s]);
        },
      }.m;
    });
  }

  // Object.assign copies every own key of every source.
  replaceMethod(Object, "assign", function (native) {
    return {
      assign(...args) {
        for (let i = 1; i < args.length; i++) {
          const a = args[i];
          if (typeof a === "string") charge(a.length);
          else if ((typeof a === "object" && a !== null) || typeof a === "function") {
            charge(ownKeys(a).length);
          }
        }
        return apply(native, Object, args);
      },
    }.assign;
  });

  // Key listings charge the number of keys.
  function chargeResultLength(holder, key) {
    replaceMethod(holder, key, function (native) {
      return {
        m(...args) {
          const out = apply(native, holder, args);
          charge(out.length);
          return out;
        },
      }.m;
    });
  }
  chargeResultLength(Object, "keys");
  chargeResultLength(Object, "values");
  chargeResultLength(Object, "entries");
  chargeResultLength(Object, "getOwnPropertyNames");
  chargeResultLength(Object, "getOwnPropertySymbols");
  chargeResultLength(Reflect, "ownKeys");

  // 3. Assignable inherited properties (the "override mistake").
  function tame(holder, key) {
    const d = gopd(holder, key);
    if (d === undefined || !("value" in d) || !d.configurable) return;
    const value = d.value;
    defineProperty(holder, key, {
      get: function () {
        return value;
      },
      set: function (v) {
        if (this === holder) {
          throw new TypeErrorCtor("Cannot assign to read only property '" + key + "' of a built-in");
        }
        if ((typeof this !== "object" || this === null) && typeof this !== "function") return;
        defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
      },
      enumerable: d.enumerable,
      configurable: false,
    });
  }
  const tamed = [
    [Object.prototype, ["constructor", "toString", "toLocaleString", "valueOf", "hasOwnProperty",
      "isPrototypeOf", "propertyIsEnumerable"]],
    [Function.prototype, ["constructor", "toString", "apply", "call", "bind"]],
    [Array.prototype, ["constructor", "toString", "push"]],
  ];
  const errorNames = ["Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError",
    "TypeError", "URIError", "InternalError", "AggregateError", "SuppressedError"];
  for (let i = 0; i < errorNames.length; i++) {
    const ctor = G[errorNames[i]];
    if (typeof ctor === "function") {
      tamed.push([ctor.prototype, ["constructor", "name", "message", "toString"]]);
    }
  }
  for (let i = 0; i < tamed.length; i++) {
    const keys = tamed[i][1];
    for (let j = 0; j < keys.length; j++) tame(tamed[i][0], keys[j]);
  }

  // 4. Freeze everything reachable from the global object and the hidden intrinsics.
  const roots = [G, charge];
  const samples = [
    function () { return function* () {}; },
    function () { return async function () {}; },
    function () { return async function* () {}; },
    function () { return [][Symbol.iterator](); },
    function () { return new Map()[Symbol.iterator](); },
    function () { return new Set()[Symbol.iterator](); },
    function () { return ""[Symbol.iterator](); },
    function () { return /x/[Symbol.matchAll](""); },
    function () { return [].values().map(function (x) { return x; }); },
    function () { return Iterator.from({ next: function () { return { done: true }; } }); },
    function () { return (function* () {})(); },
    function () { return (async function* () {})(); },
    function () { return gopd(function () { "use strict"; return arguments; }(), "callee").get; },
  ];
  for (let i = 0; i < samples.length; i++) {
    try {
      roots.push(samples[i]());
    } catch (e) {
      // an intrinsic this engine version does not have
    }
  }
  const seen = new Set();
  const stack = roots;
  while (stack.length > 0) {
    const o = stack.pop();
    if ((typeof o !== "object" || o === null) && typeof o !== "function") continue;
    if (seen.has(o)) continue;
    seen.add(o);
    freeze(o);
    stack.push(getPrototypeOf(o));
    const keys = ownKeys(o);
    for (let i = 0; i < keys.length; i++) {
      const d = gopd(o, keys[i]);
      if ("value" in d) {
        stack.push(d.value);
      } else {
        stack.push(d.get);
        stack.push(d.set);
      }
    }
  }

  // Helpers called by the host (each call runs under the step meter).

  // Lone surrogates become U+FFFD so that the host can read the text as UTF-8.
  function wellFormed(s) {
    return apply(nativeToWellFormed, s, []);
  }

  // Text of a validator result that is neither true nor a rejection.
  function render(v) {
    switch (typeof v) {
      case "string":
        return wellFormed(v);
      case "undefined":
        return "undefined";
      case "function":
        return "function";
      case "object":
        try {
          const s = stringify(v);
          return wellFormed(typeof s === "string" ? s : toStr(v));
        } catch (e) {
          return "[object that cannot be rendered]";
        }
      default:
        return wellFormed(toStr(v));
    }
  }

  // Text of an uncaught exception.
  function describe(e) {
    try {
      if (e instanceof ErrorCtor) return wellFormed(toStr(e));
      return render(e);
    } catch (x) {
      return "[exception that cannot be rendered]";
    }
  }

  // The JSON form of a value: what JSON.parse(JSON.stringify(v)) gives, or undefined.
  function normalize(v) {
    const s = stringify(v);
    return s === undefined ? undefined : parse(s);
  }

  // Freezes a compiled function and its prototype object.
  function freezeFunction(f) {
    freeze(f);
    const p = gopd(f, "prototype");
    if (p !== undefined && typeof p.value === "object" && p.value !== null) freeze(p.value);
    return f;
  }

  function spin() {
    for (;;) {
      // interrupted by the host
    }
  }

  return freeze([
    freeze(render),
    freeze(describe),
    freeze(normalize),
    freeze(freezeFunction),
    freeze(spin),
  ]);
});
