// vqsort-ref: a reference row for `make bench`, not part of hybridd.
//
// Times Highway's vqsort (Blacher et al. 2022; Debian's libhwy-dev, in libhwy_contrib) on the
// very array that the lesson and hybridd sort (the .npy that lesson.py --save-sort-input
// wrote), so that docs/benchmarks.md can show the field's vectorised quicksort next to
// numpy.sort and hybridd's engine. Built only when CMake finds Highway (bench/CMakeLists.txt);
// nothing in the daemon links it. C++ because vqsort is a C++ API.
//
//   vqsort-ref --input FILE.npy [--repeat N]
//
// One untimed warm-up, then N timed runs (default 3) at two settings: one thread sorting one
// copy, and two threads each sorting their own copy at once (the lesson's two-threads-two-
// arrays recipe; throughput counts both). Every run first copies the input into the work
// buffer (not timed) and checks the result is ascending afterwards (not timed either).
// Prints one JSON document on stdout; exit 1 on any error.
#include <hwy/contrib/sort/vqsort.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#ifndef HY_HWY_VERSION
#define HY_HWY_VERSION "unknown"
#endif

namespace {

struct Input {
  std::string dtype;         // "f64" or "f32"
  size_t n = 0;
  std::vector<char> data;    // n keys, little-endian as numpy wrote them
};

// Reads a version 1-3 .npy of a C-ordered 1-D '<f8' or '<f4' array; false with a message
// on anything else (hybridd's inputs are exactly these).
bool read_npy(const char *path, Input *in) {
  FILE *f = std::fopen(path, "rb");
  if (!f) {
    std::fprintf(stderr, "vqsort-ref: %s: %s\n", path, std::strerror(errno));
    return false;
  }
  unsigned char pre[12];
  bool ok = std::fread(pre, 1, 10, f) == 10 && std::memcmp(pre, "\x93NUMPY", 6) == 0;
  size_t hlen = 0;
  if (ok && pre[6] == 1) {
    hlen = pre[8] | (size_t)pre[9] << 8;
  } else if (ok && std::fread(pre + 10, 1, 2, f) == 2) {
    hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  } else {
    ok = false;
  }
  std::string head(hlen, '\0');
  ok = ok && hlen > 0 && std::fread(&head[0], 1, hlen, f) == hlen;
  size_t width = 0;
  if (ok && head.find("'<f8'") != std::string::npos) {
    in->dtype = "f64", width = 8;
  } else if (ok && head.find("'<f4'") != std::string::npos) {
    in->dtype = "f32", width = 4;
  }
  size_t shape = ok ? head.find("'shape': (") : std::string::npos;
  ok = width && shape != std::string::npos && head.find("'fortran_order': False") !=
       std::string::npos;
  if (ok) {
    in->n = std::strtoull(head.c_str() + shape + 10, nullptr, 10);
    in->data.resize(in->n * width);
    ok = in->n > 0 && std::fread(in->data.data(), width, in->n, f) == in->n;
  }
  std::fclose(f);
  if (!ok) {
    std::fprintf(stderr, "vqsort-ref: %s: not a 1-D little-endian f64/f32 .npy\n", path);
  }
  return ok;
}

// Sorts keys in place with one Sorter (vqsort's per-thread state) and says whether the
// result is ascending.
template <typename T>
bool sort_and_check(const hwy::Sorter &sorter, char *bytes, size_t n) {
  T *keys = reinterpret_cast<T *>(bytes);
  sorter(keys, n, hwy::SortAscending());
  return std::is_sorted(keys, keys + n);
}

struct Timing {
  std::vector<double> ns;
  bool ok = true;
};

// One run of `copies` threads, each sorting its own copy of the input; wall time from the
// first start to the last join, as lesson.py times its threads.
double run_once(const Input &in, std::vector<std::vector<char>> &work,
                std::vector<hwy::Sorter> &sorters, bool *ok) {
  size_t copies = work.size();
  for (auto &w : work) {
    std::memcpy(w.data(), in.data.data(), in.data.size());
  }
  std::vector<char> good(copies, 0);
  auto job = [&](size_t i) {
    good[i] = in.dtype == "f64" ? sort_and_check<double>(sorters[i], work[i].data(), in.n)
                                : sort_and_check<float>(sorters[i], work[i].data(), in.n);
  };
  auto t0 = std::chrono::steady_clock::now();
  if (copies == 1) {
    job(0);
  } else {
    std::vector<std::thread> ts;
    for (size_t i = 0; i < copies; i++) ts.emplace_back(job, i);
    for (auto &t : ts) t.join();
  }
  auto t1 = std::chrono::steady_clock::now();
  for (char g : good) *ok = *ok && g;
  return std::chrono::duration<double, std::nano>(t1 - t0).count();
}

Timing measure(const Input &in, size_t copies, int repeat) {
  std::vector<std::vector<char>> work(copies, std::vector<char>(in.data.size()));
  std::vector<hwy::Sorter> sorters(copies);
  Timing t;
  run_once(in, work, sorters, &t.ok);   // warm-up: page faults, vqsort's dispatch
  for (int r = 0; r < repeat; r++) t.ns.push_back(run_once(in, work, sorters, &t.ok));
  return t;
}

// A JSON string: the path as given, with '"', '\\' and control characters escaped.
void print_json_string(const char *s) {
  std::putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      std::printf("\\%c", c);
    } else if (c < 0x20) {
      std::printf("\\u%04x", c);
    } else {
      std::putchar(c);
    }
  }
  std::putchar('"');
}

void print_row(const Input &in, size_t copies, const Timing &t, bool last) {
  std::vector<double> s = t.ns;
  std::sort(s.begin(), s.end());
  size_t m = s.size();
  double med = m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
  std::printf("  {\"threads\": %zu, \"copies\": %zu, \"n\": %zu, \"median_ns\": %.0f, "
              "\"min_ns\": %.0f, \"max_ns\": %.0f, \"throughput\": %.6g, \"times_ns\": [",
              copies, copies, in.n, med, s.front(), s.back(), copies * in.n / (med / 1e9));
  for (size_t i = 0; i < t.ns.size(); i++) std::printf("%s%.0f", i ? ", " : "", t.ns[i]);
  std::printf("]}%s\n", last ? "" : ",");
}

}  // namespace

int main(int argc, char **argv) {
  const char *path = nullptr;
  int repeat = 3;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--input") && i + 1 < argc) {
      path = argv[++i];
    } else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: vqsort-ref --input FILE.npy [--repeat N]\n");
      return 2;
    }
  }
  if (!path || repeat < 1) {
    std::fprintf(stderr, "usage: vqsort-ref --input FILE.npy [--repeat N>=1]\n");
    return 2;
  }
  Input in;
  if (!read_npy(path, &in)) return 1;
  Timing one = measure(in, 1, repeat);
  Timing two = measure(in, 2, repeat);
  if (!one.ok || !two.ok) {
    std::fprintf(stderr, "vqsort-ref: vqsort left %s unsorted\n", path);
    return 1;
  }
  std::printf("{\"tool\": \"bench/vqsort-ref\", \"reference\": \"Highway vqsort\", "
              "\"version\": \"%s\", \"input\": ", HY_HWY_VERSION);
  print_json_string(path);
  std::printf(", \"dtype\": \"%s\", \"n\": %zu, \"repeat\": %d, \"rows\": [\n",
              in.dtype.c_str(), in.n, repeat);
  print_row(in, 1, one, false);
  print_row(in, 2, two, true);
  std::printf("]}\n");
  return std::fflush(stdout) == 0 && !std::ferror(stdout) ? 0 : 1;
}
