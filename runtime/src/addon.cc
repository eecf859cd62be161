// Node binding of one generated program: a thin layer over fpdt_abi.h.
// Every ABI failure becomes a JS Error whose message is the program's one-line
// message and whose `code` is the fpdt_status name (e.g. "FPDT_ERR_NO_DEVICE").
#include <napi.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cublaslt_shim.h"
#include "cuda_errors.h"
#include "fpdt_abi.h"
#include "fpdt_comm.h"
#include "nccl_shim.h"

namespace {

const char* statusName(int status) {
  switch (status) {
    case FPDT_OK: return "FPDT_OK";
    case FPDT_ERR_INVALID_ARGUMENT: return "FPDT_ERR_INVALID_ARGUMENT";
    case FPDT_ERR_CONFIG: return "FPDT_ERR_CONFIG";
    case FPDT_ERR_NO_DEVICE: return "FPDT_ERR_NO_DEVICE";
    case FPDT_ERR_CUDA: return "FPDT_ERR_CUDA";
    case FPDT_ERR_OUT_OF_MEMORY: return "FPDT_ERR_OUT_OF_MEMORY";
    case FPDT_ERR_LIBRARY: return "FPDT_ERR_LIBRARY";
    case FPDT_ERR_NCCL: return "FPDT_ERR_NCCL";
    case FPDT_ERR_CUBLAS: return "FPDT_ERR_CUBLAS";
    case FPDT_ERR_STATE: return "FPDT_ERR_STATE";
    case FPDT_ERR_INTERNAL: return "FPDT_ERR_INTERNAL";
    default: return "FPDT_ERR_UNKNOWN";
  }
}

Napi::Error statusError(Napi::Env env, int status, const std::string& message) {
  std::string text = message.empty() ? std::string("program call failed with ") + statusName(status)
                                     : message;
  Napi::Error error = Napi::Error::New(env, text);
  error.Set("code", Napi::String::New(env, statusName(status)));
  error.Set("status", Napi::Number::New(env, status));
  return error;
}

int32_t intArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

// The phases argument of step / stepAll / stepSync (fpdt_step_phases): absent means a whole step.
static int phasesArg(const Napi::CallbackInfo& info, size_t at, const char* where) {
  if (info.Length() <= at || info[at].IsUndefined()) return FPDT_PHASE_ZERO_GRADS | FPDT_PHASE_UPDATE;
  if (!info[at].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(where) + ": phases must be a number (FPDT_PHASE_* flags)");
  return info[at].As<Napi::Number>().Int32Value();
}

class StepWorker;

class Program : public Napi::ObjectWrap<Program> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Program",
                       {
                           InstanceMethod("paramCount", &Program::ParamCount),
                           InstanceMethod("paramInfo", &Program::ParamInfo),
                           InstanceMethod("setParam", &Program::SetParam),
                           InstanceMethod("getParam", &Program::GetParam),
                           InstanceMethod("getGrad", &Program::GetGrad),
                           InstanceMethod("getState", &Program::GetState),
                           InstanceMethod("setState", &Program::SetState),
                           InstanceMethod("getStep", &Program::GetStep),
                           InstanceMethod("gradNorm", &Program::GradNorm),
                           InstanceMethod("setStep", &Program::SetStep),
                           InstanceMethod("setDocuments", &Program::SetDocuments),
                           InstanceMethod("setTokens", &Program::SetTokens),
                           InstanceMethod("setLabelCount", &Program::SetLabelCount),
                           InstanceMethod("setLearningRate", &Program::SetLearningRate),
                           InstanceMethod("step", &Program::Step),
                           InstanceMethod("stepSync", &Program::StepSync),
                           InstanceMethod("memory", &Program::Memory),
                           InstanceMethod("timings", &Program::Timings),
                           InstanceMethod("trace", &Program::Trace),
                           InstanceMethod("destroy", &Program::Destroy),
                       });
  }

  // new Program(configJson, rank, world, comm?)
  explicit Program(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Program>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString())
      throw Napi::TypeError::New(env, "config must be a JSON string");
    std::string config = info[0].As<Napi::String>().Utf8Value();
    int rank = intArg(info, 1, "rank");
    int world = intArg(info, 2, "world");
    void* comm = nullptr;
    if (info.Length() > 3 && info[3].IsExternal()) {
      comm = info[3].As<Napi::External<void>>().Data();
      comm_ref_ = Napi::Reference<Napi::External<void>>::New(info[3].As<Napi::External<void>>(), 1);
    }
    int status = fpdt_create(config.c_str(), rank, world, comm, &program_);
    if (status != FPDT_OK || !program_) {
      program_ = nullptr;
      throw statusError(env, status ? status : FPDT_ERR_INTERNAL, fpdt_last_create_error());
    }
  }

  ~Program() override { fpdt_destroy(program_); }

  fpdt_program* raw() { return program_; }
  void setBusy(bool busy) { busy_ = busy; }
  bool busy() const { return busy_; }

 private:
  fpdt_program* live(const Napi::CallbackInfo& info, const char* method) {
    if (!program_)
      throw Napi::Error::New(info.Env(), std::string("Program.") + method +
                                             ": the program was destroyed; create a new one");
    if (busy_)
      throw Napi::Error::New(info.Env(), std::string("Program.") + method +
                                             ": a step is running; await step() first");
    return program_;
  }

  void check(Napi::Env env, int status) {
    if (status != FPDT_OK) throw statusError(env, status, fpdt_last_error(program_));
  }

  int64_t shardLength(const Napi::CallbackInfo& info, fpdt_program* p, int i) {
    int64_t len = 0;
    check(info.Env(), fpdt_param_info(p, i, nullptr, nullptr, nullptr, nullptr, &len));
    return len;
  }

  Napi::Value ParamCount(const Napi::CallbackInfo& info) {
    int count = 0;
    check(info.Env(), fpdt_param_count(live(info, "paramCount"), &count));
    return Napi::Number::New(info.Env(), count);
  }

  Napi::Value ParamInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    fpdt_program* p = live(info, "paramInfo");
    int i = intArg(info, 0, "parameter index");
    const char* name = nullptr;
    int ndim = 0;
    int64_t shape[FPDT_MAX_DIMS] = {0};
    int64_t offset = 0, len = 0;
    check(env, fpdt_param_info(p, i, &name, &ndim, shape, &offset, &len));
    Napi::Object out = Napi::Object::New(env);
    out.Set("name", Napi::String::New(env, name ? name : ""));
    Napi::Array dims = Napi::Array::New(env, ndim);
    for (int d = 0; d < ndim && d < FPDT_MAX_DIMS; d++)
      dims.Set(d, Napi::Number::New(env, (double)shape[d]));
    out.Set("shape", dims);
    out.Set("shardOffset", Napi::Number::New(env, (double)offset));
    out.Set("shardLength", Napi::Number::New(env, (double)len));
    return out;
  }

  Napi::Value SetParam(const Napi::CallbackInfo& info) {
    fpdt_program* p = live(info, "setParam");
    int i = intArg(info, 0, "parameter index");
    if (info.Length() < 2 || !info[1].IsTypedArray() ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(info.Env(), "Program.setParam: values must be a Float32Array");
    Napi::Float32Array values = info[1].As<Napi::Float32Array>();
    check(info.Env(), fpdt_set_param(p, i, values.Data(), (int64_t)values.ElementLength()));
    return info.Env().Undefined();
  }

  Napi::Value GetParam(const Napi::CallbackInfo& info) { return readShard(info, "getParam", fpdt_get_param); }
  Napi::Value GetGrad(const Napi::CallbackInfo& info) { return readShard(info, "getGrad", fpdt_get_grad); }

  // AdamW moment `which` (FPDT_STATE_EXP_AVG or FPDT_STATE_EXP_AVG_SQ) of parameter i's shard.
  Napi::Value GetState(const Napi::CallbackInfo& info) {
    fpdt_program* p = live(info, "getState");
    int i = intArg(info, 0, "parameter index");
    int which = intArg(info, 1, "moment (0: exp_avg, 1: exp_avg_sq)");
    int64_t len = shardLength(info, p, i);
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), (size_t)len);
    check(info.Env(), fpdt_get_state(p, i, which, out.Data(), len));
    return out;
  }

  Napi::Value SetState(const Napi::CallbackInfo& info) {
    fpdt_program* p = live(info, "setState");
    int i = intArg(info, 0, "parameter index");
    int which = intArg(info, 1, "moment (0: exp_avg, 1: exp_avg_sq)");
    if (info.Length() < 3 || !info[2].IsTypedArray() ||
        info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(info.Env(), "Program.setState: values must be a Float32Array");
    Napi::Float32Array values = info[2].As<Napi::Float32Array>();
    check(info.Env(), fpdt_set_state(p, i, which, values.Data(), (int64_t)values.ElementLength()));
    return info.Env().Undefined();
  }

  Napi::Value GradNorm(const Napi::CallbackInfo& info) {
    float norm = 0;
    check(info.Env(), fpdt_grad_norm(live(info, "gradNorm"), &norm));
    return Napi::Number::New(info.Env(), norm);
  }

  Napi::Value GetStep(const Napi::CallbackInfo& info) {
    int step = 0;
    check(info.Env(), fpdt_get_step(live(info, "getStep"), &step));
    return Napi::Number::New(info.Env(), step);
  }

  Napi::Value SetStep(const Napi::CallbackInfo& info) {
    fpdt_program* p = live(info, "setStep");
    check(info.Env(), fpdt_set_step(p, intArg(info, 0, "step count")));
    return info.Env().Undefined();
  }

  // One parameter's shard (its values or its gradient) as a fresh Float32Array.
  Napi::Value readShard(const Napi::CallbackInfo& info, const char* what,
                        int (*read)(const fpdt_program*, int, float*, int64_t)) {
    fpdt_program* p = live(info, what);
    int i = intArg(info, 0, "parameter index");
    int64_t len = shardLength(info, p, i);
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), (size_t)len);
    check(info.Env(), read(p, i, out.Data(), len));
    return out;
  }

  static bool isInt32Array(const Napi::Value& v) {
    return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
  }

  Napi::Value SetTokens(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    fpdt_program* p = live(info, "setTokens");
    if (info.Length() < 1 || !isInt32Array(info[0]))
      throw Napi::TypeError::New(env, "Program.setTokens: tokens must be an Int32Array");
    Napi::Int32Array tokens = info[0].As<Napi::Int32Array>();
    const int32_t* labels = nullptr;
    if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) {
      if (!isInt32Array(info[1]))
        throw Napi::TypeError::New(env, "Program.setTokens: labels must be an Int32Array or null");
      Napi::Int32Array l = info[1].As<Napi::Int32Array>();
      if (l.ElementLength() != tokens.ElementLength())
        throw Napi::RangeError::New(env, "Program.setTokens: labels (" +
                                             std::to_string(l.ElementLength()) +
                                             ") and tokens (" +
                                             std::to_string(tokens.ElementLength()) +
                                             ") must have the same length");
      labels = l.Data();
    }
    check(env, fpdt_set_tokens(p, tokens.Data(), labels, (int64_t)tokens.ElementLength()));
    return env.Undefined();
  }

  // Packed documents: positions and document ids, each an Int32Array as long as the tokens.
  Napi::Value SetDocuments(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    fpdt_program* p = live(info, "setDocuments");
    if (info.Length() < 2 || !isInt32Array(info[0]) || !isInt32Array(info[1]))
      throw Napi::TypeError::New(env, "Program.setDocuments: positions and document ids must be Int32Arrays");
    Napi::Int32Array pos = info[0].As<Napi::Int32Array>(), docs = info[1].As<Napi::Int32Array>();
    if (pos.ElementLength() != docs.ElementLength())
      throw Napi::RangeError::New(env, "Program.setDocuments: positions (" + std::to_string(pos.ElementLength()) +
                                           ") and document ids (" + std::to_string(docs.ElementLength()) +
                                           ") must have the same length");
    check(env, fpdt_set_documents(p, pos.Data(), docs.Data(), (int64_t)pos.ElementLength()));
    return env.Undefined();
  }

  // Gradient accumulation: the labels of all K windows, which every micro step divides by.
  Napi::Value SetLabelCount(const Napi::CallbackInfo& info) {
    fpdt_program* p = live(info, "setLabelCount");
    if (info.Length() < 1 || !info[0].IsNumber())
      throw Napi::TypeError::New(info.Env(), "Program.setLabelCount: count must be a number");
    check(info.Env(), fpdt_set_label_count(p, info[0].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  }

  Napi::Value SetLearningRate(const Napi::CallbackInfo& info) {
    fpdt_program* p = live(info, "setLearningRate");
    if (info.Length() < 1 || !info[0].IsNumber())
      throw Napi::TypeError::New(info.Env(), "Program.setLearningRate: lr must be a number");
    check(info.Env(), fpdt_set_learning_rate(p, info[0].As<Napi::Number>().FloatValue()));
    return info.Env().Undefined();
  }

  Napi::Value StepSync(const Napi::CallbackInfo& info) {
    float loss = 0;
    check(info.Env(), fpdt_step_phases(live(info, "stepSync"), phasesArg(info, 0, "Program.stepSync"), &loss));
    return Napi::Number::New(info.Env(), loss);
  }

  Napi::Value Step(const Napi::CallbackInfo& info);

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t planned_gpu = 0, peak_gpu = 0, planned_host = 0;
    check(env, fpdt_memory(live(info, "memory"), &planned_gpu, &peak_gpu, &planned_host));
    Napi::Object out = Napi::Object::New(env);
    out.Set("plannedGpu", Napi::Number::New(env, (double)planned_gpu));
    out.Set("peakGpuMeasured", Napi::Number::New(env, (double)peak_gpu));
    out.Set("plannedHost", Napi::Number::New(env, (double)planned_host));
    return out;
  }

  Napi::Value Timings(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    fpdt_program* p = live(info, "timings");
    int count = 0;
    check(env, fpdt_timings(p, nullptr, 0, &count));
    std::vector<fpdt_timing> entries((size_t)(count > 0 ? count : 0));
    check(env, fpdt_timings(p, entries.data(), count, &count));
    Napi::Array out = Napi::Array::New(env);
    for (int i = 0; i < count && i < (int)entries.size(); i++) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("name", Napi::String::New(env, entries[i].name ? entries[i].name : ""));
      t.Set("ms", Napi::Number::New(env, entries[i].ms));
      out.Set(i, t);
    }
    return out;
  }

  // The last step's instructions in issue order: [{instr, id, op, stream, startMs, endMs}], each
  // named by the program's table (fpdt_trace_instr); empty unless the program traces.
  Napi::Value Trace(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    fpdt_program* p = live(info, "trace");
    int count = 0;
    check(env, fpdt_trace(p, nullptr, 0, &count));
    std::vector<fpdt_trace_event> events((size_t)(count > 0 ? count : 0));
    check(env, fpdt_trace(p, events.data(), count, &count));
    // a loop's iterations share an instruction: its names are made into JS strings once
    std::vector<std::pair<Napi::Value, Napi::Value>> names;
    Napi::Array out = Napi::Array::New(env);
    for (int i = 0; i < count && i < (int)events.size(); i++) {
      const fpdt_trace_event& e = events[i];
      if (e.instr < 0) throw Napi::Error::New(env, "Program.trace: the program gave a negative instruction index");
      if ((size_t)e.instr >= names.size()) names.resize((size_t)e.instr + 1);
      auto& name = names[(size_t)e.instr];
      if (name.first.IsEmpty()) {
        const char* id = nullptr;
        const char* op = nullptr;
        check(env, fpdt_trace_instr(p, e.instr, &id, &op));
        name = {Napi::String::New(env, id ? id : ""), Napi::String::New(env, op ? op : "")};
      }
      Napi::Object t = Napi::Object::New(env);
      t.Set("instr", Napi::Number::New(env, e.instr));
      t.Set("id", name.first);
      t.Set("op", name.second);
      t.Set("stream", Napi::Number::New(env, e.stream));
      t.Set("startMs", Napi::Number::New(env, e.start_ms));
      t.Set("endMs", Napi::Number::New(env, e.end_ms));
      out.Set((uint32_t)i, t);
    }
    return out;
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    if (busy_)
      throw Napi::Error::New(info.Env(), "Program.destroy: a step is running; await step() first");
    fpdt_destroy(program_);
    program_ = nullptr;
    if (!comm_ref_.IsEmpty()) comm_ref_.Reset();
    return info.Env().Undefined();
  }

  fpdt_program* program_ = nullptr;
  bool busy_ = false;
  Napi::Reference<Napi::External<void>> comm_ref_;  // keeps a caller's comm alive as long as the program
};

// Runs fpdt_step_phases off the JS thread so a long step does not block the event loop.
class StepWorker : public Napi::AsyncWorker {
 public:
  StepWorker(Napi::Env env, Program* program, Napi::Object self, int phases)
      : Napi::AsyncWorker(env), program_(program), deferred_(Napi::Promise::Deferred::New(env)), phases_(phases) {
    self_ = Napi::Persistent(self);
    program_->setBusy(true);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    status_ = fpdt_step_phases(program_->raw(), phases_, &loss_);
    if (status_ != FPDT_OK) message_ = fpdt_last_error(program_->raw());
  }
  void OnOK() override {
    program_->setBusy(false);
    if (status_ == FPDT_OK)
      deferred_.Resolve(Napi::Number::New(Env(), loss_));
    else
      deferred_.Reject(statusError(Env(), status_, message_).Value());
  }

 private:
  Program* program_;
  Napi::ObjectReference self_;
  Napi::Promise::Deferred deferred_;
  int phases_;
  int status_ = FPDT_OK;
  float loss_ = 0;
  std::string message_;
};

// Steps the ranks of a local world together: one host thread per rank, each driving its
// program (their collectives meet at the world's barriers). Resolves to the losses in rank
// order; rejects with the first failing rank's message, preferring a rank's own failure to
// the "another rank failed" of the others.
class StepAllWorker : public Napi::AsyncWorker {
 public:
  StepAllWorker(Napi::Env env, std::vector<Program*> programs, Napi::Array self, int phases)
      : Napi::AsyncWorker(env), programs_(std::move(programs)), deferred_(Napi::Promise::Deferred::New(env)), phases_(phases) {
    self_ = Napi::Persistent(self.As<Napi::Object>());
    for (Program* p : programs_) p->setBusy(true);
    status_.assign(programs_.size(), FPDT_OK);
    loss_.assign(programs_.size(), 0.f);
    message_.resize(programs_.size());
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    std::vector<std::thread> threads;
    for (size_t r = 0; r < programs_.size(); r++)
      threads.emplace_back([this, r] {
        status_[r] = fpdt_step_phases(programs_[r]->raw(), phases_, &loss_[r]);
        if (status_[r] != FPDT_OK) message_[r] = fpdt_last_error(programs_[r]->raw());
      });
    for (auto& t : threads) t.join();
  }
  void OnOK() override {
    for (Program* p : programs_) p->setBusy(false);
    int bad = -1;
    for (size_t r = 0; r < programs_.size(); r++)
      if (status_[r] != FPDT_OK && (bad < 0 || (status_[bad] == FPDT_ERR_STATE && status_[r] != FPDT_ERR_STATE))) bad = (int)r;
    if (bad >= 0) {
      deferred_.Reject(statusError(Env(), status_[bad], "rank " + std::to_string(bad) + ": " + message_[bad]).Value());
      return;
    }
    Napi::Array out = Napi::Array::New(Env(), programs_.size());
    for (size_t r = 0; r < programs_.size(); r++) out.Set((uint32_t)r, Napi::Number::New(Env(), loss_[r]));
    deferred_.Resolve(out);
  }

 private:
  std::vector<Program*> programs_;
  Napi::ObjectReference self_;
  Napi::Promise::Deferred deferred_;
  int phases_;
  std::vector<int> status_;
  std::vector<float> loss_;
  std::vector<std::string> message_;
};

// stepAll([program, ...]): see StepAllWorker.
Napi::Value StepAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "stepAll: expects an array of programs");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<Program*> programs;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, "stepAll: expects an array of programs");
    Program* p = Program::Unwrap(v.As<Napi::Object>());
    if (!p || !p->raw()) throw Napi::Error::New(env, "stepAll: program " + std::to_string(i) + " was destroyed");
    if (p->busy()) throw Napi::Error::New(env, "stepAll: program " + std::to_string(i) + " is running a step");
    programs.push_back(p);
  }
  auto* worker = new StepAllWorker(env, std::move(programs), list, phasesArg(info, 1, "stepAll"));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value Program::Step(const Napi::CallbackInfo& info) {
  live(info, "step");
  auto* worker = new StepWorker(info.Env(), this, info.This().As<Napi::Object>(), phasesArg(info, 0, "Program.step"));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value AbiVersion(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fpdt_abi_version());
}

Napi::Value ProgramName(const Napi::CallbackInfo& info) {
  const char* name = fpdt_program_name();
  return Napi::String::New(info.Env(), name ? name : "");
}

// cudaProbe(device): throws the "no CUDA device: ..." error when unusable.
Napi::Value CudaProbe(const Napi::CallbackInfo& info) {
  char msg[1024];
  int device = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  int status = fpdt_cuda_select_device(device, msg, sizeof msg);
  if (status != FPDT_OK) throw statusError(info.Env(), status, msg);
  return info.Env().Undefined();
}

// ncclUniqueId(): a Buffer of 128 bytes for rank 0 to share with the others.
Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  char msg[1024];
  const fpdt_nccl* nccl = fpdt_nccl_load(msg, sizeof msg);
  if (!nccl) throw statusError(info.Env(), FPDT_ERR_LIBRARY, msg);
  fpdt_nccl_unique_id id;
  fpdt_nccl_result r = nccl->get_unique_id(&id);
  if (r != FPDT_NCCL_SUCCESS) {
    int status = fpdt_nccl_describe(r, "ncclGetUniqueId", nullptr, msg, sizeof msg);
    throw statusError(info.Env(), status, msg);
  }
  return Napi::Buffer<char>::Copy(info.Env(), id.internal, sizeof id.internal);
}

// What one ncclInit call hands to its thread and gets back. The deferred is touched only on the
// JS thread (in settleNcclInit).
struct NcclInitJob {
  explicit NcclInitJob(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction done;
  fpdt_nccl_unique_id id;
  int rank = 0, world = 0, device = 0;
  int status = FPDT_OK;
  std::string message;
  fpdt_nccl_comm comm = nullptr;
};

// On the JS thread, once the init thread has finished: settles the promise of ncclInit.
void settleNcclInit(Napi::Env env, Napi::Function, NcclInitJob* job) {
  if (job->status == FPDT_OK) {
    // fpdt_create takes the tagged communicator of fpdt_comm.h; ncclDestroy frees it
    auto* desc = new fpdt_comm{FPDT_COMM_NCCL, job->comm, nullptr, job->device, nullptr};
    job->deferred.Resolve(Napi::External<void>::New(env, desc));
  } else {
    job->deferred.Reject(statusError(env, job->status, job->message).Value());
  }
  delete job;
}

// On the init thread: the GPU first (NCCL binds the communicator to the calling thread's
// device), then ncclCommInitRank, which returns once every rank of the world has called it.
void runNcclInit(NcclInitJob* job) {
  char msg[1024] = "";
  job->status = fpdt_cuda_select_device(job->device, msg, sizeof msg);
  if (job->status == FPDT_OK) {
    const fpdt_nccl* nccl = fpdt_nccl_load(msg, sizeof msg);
    if (!nccl) {
      job->status = FPDT_ERR_LIBRARY;
    } else {
      fpdt_nccl_result r = nccl->comm_init_rank(&job->comm, job->world, job->id, job->rank);
      if (r != FPDT_NCCL_SUCCESS) job->status = fpdt_nccl_describe(r, "ncclCommInitRank", nullptr, msg, sizeof msg);
    }
  }
  if (job->status != FPDT_OK) job->message = msg;
  // settleNcclInit may free the job as soon as the call is queued: release a copy
  Napi::ThreadSafeFunction done = job->done;
  done.BlockingCall(job, settleNcclInit);  // fails only while the process exits; then nobody waits
  done.Release();
}

// ncclInit(id, rank, world, device): a Promise of the communicator. The join runs on a thread
// of its own so that the event loop stays free while the ranks meet. Not a libuv pool thread
// (AsyncWorker): Node joins its pool when the process exits, so a join that never returns would
// keep a failed rank from exiting. The pending thread keeps the event loop alive.
Napi::Value NcclInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer() ||
      info[0].As<Napi::Buffer<char>>().Length() != FPDT_NCCL_UNIQUE_ID_BYTES)
    throw Napi::TypeError::New(env, "ncclInit: id must be the 128-byte Buffer of ncclUniqueId()");
  int rank = intArg(info, 1, "rank");
  int world = intArg(info, 2, "world");
  int device = intArg(info, 3, "device");
  auto* job = new NcclInitJob(env);
  job->rank = rank;
  job->world = world;
  job->device = device;
  memcpy(job->id.internal, info[0].As<Napi::Buffer<char>>().Data(), sizeof job->id.internal);
  job->done = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                            "fpdt ncclInit", 0, 1);
  Napi::Promise promise = job->deferred.Promise();
  std::thread(runNcclInit, job).detach();
  return promise;
}

// localWorld(ranks): a communicator for `ranks` programs of this process on GPU 0 (fpdt_comm.h).
Napi::Value LocalWorld(const Napi::CallbackInfo& info) {
  int ranks = intArg(info, 0, "ranks");
  fpdt_local_world* w = fpdt_local_world_create(ranks);
  if (!w)
    throw Napi::RangeError::New(info.Env(), "localWorld: ranks must be 1.." + std::to_string(FPDT_MAX_LOCAL_RANKS));
  auto* desc = new fpdt_comm{FPDT_COMM_LOCAL, nullptr, w, 0, nullptr};
  return Napi::External<void>::New(info.Env(), desc, [](Napi::Env, void* data) {
    auto* d = static_cast<fpdt_comm*>(data);
    fpdt_local_world_destroy(d->local);
    delete d;
  });
}

Napi::Value NcclDestroy(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "ncclDestroy: expects the value of ncclInit()");
  char msg[1024];
  const fpdt_nccl* nccl = fpdt_nccl_load(msg, sizeof msg);
  if (!nccl) throw statusError(info.Env(), FPDT_ERR_LIBRARY, msg);
  auto* desc = static_cast<fpdt_comm*>(info[0].As<Napi::External<void>>().Data());
  if (!desc || desc->kind != FPDT_COMM_NCCL || !desc->nccl)
    throw Napi::TypeError::New(info.Env(), "ncclDestroy: expects the value of ncclInit(), once");
  // the sequence-parallel group a program with dp groups split from it goes first
  if (desc->nccl_group) {
    auto group = static_cast<fpdt_nccl_comm>(desc->nccl_group);
    desc->nccl_group = nullptr;
    fpdt_nccl_result r = nccl->comm_destroy(group);
    if (r != FPDT_NCCL_SUCCESS) {
      int status = fpdt_nccl_describe(r, "ncclCommDestroy (sequence-parallel group)", nullptr, msg, sizeof msg);
      throw statusError(info.Env(), status, msg);
    }
  }
  auto comm = static_cast<fpdt_nccl_comm>(desc->nccl);
  desc->nccl = nullptr;
  fpdt_nccl_result r = nccl->comm_destroy(comm);
  if (r != FPDT_NCCL_SUCCESS) {
    int status = fpdt_nccl_describe(r, "ncclCommDestroy", nullptr, msg, sizeof msg);
    throw statusError(info.Env(), status, msg);
  }
  return info.Env().Undefined();
}

// libraryProbe("nccl" | "cublasLt"): opens the library as a run would and
// throws its one-line message when that fails.
Napi::Value LibraryProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string which = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  char msg[1024] = "";
  bool ok;
  if (which == "nccl")
    ok = fpdt_nccl_load(msg, sizeof msg) != nullptr;
  else if (which == "cublasLt")
    ok = fpdt_cublaslt_load(msg, sizeof msg) != nullptr;
  else
    throw Napi::TypeError::New(env, "libraryProbe: expects \"nccl\" or \"cublasLt\"");
  if (!ok) throw statusError(env, FPDT_ERR_LIBRARY, msg);
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("headerAbiVersion", Napi::Number::New(env, FPDT_ABI_VERSION));
  exports.Set("abiVersion", Napi::Function::New(env, AbiVersion));
  exports.Set("programName", Napi::Function::New(env, ProgramName));
  exports.Set("cudaProbe", Napi::Function::New(env, CudaProbe));
  exports.Set("libraryProbe", Napi::Function::New(env, LibraryProbe));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId));
  exports.Set("ncclInit", Napi::Function::New(env, NcclInit));
  exports.Set("ncclDestroy", Napi::Function::New(env, NcclDestroy));
  exports.Set("localWorld", Napi::Function::New(env, LocalWorld));
  exports.Set("stepAll", Napi::Function::New(env, StepAll));
  exports.Set("Program", Program::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(fpdt_addon, Init)
