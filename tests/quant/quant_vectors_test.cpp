// Reference codecs vs the spec's Appendix B test vectors (hashes produced by ggml itself):
// every type x input {U, C} x imatrix {no, yes}, the dequantized f32 of input U, and the first
// block of row 0 of input U in hex.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quant/quant.h"
#include "test_util.h"
#include "util/fp16.h"

namespace nibble {
namespace {

constexpr int kRows = 16;
constexpr int kCols = 1024;

// Appendix B input generator: exactly representable floats in [-1, 1).
std::vector<float> make_input(uint32_t seed, bool heavy) {
  std::vector<float> x(kRows * kCols);
  uint32_t s = seed;
  for (auto& v : x) {
    s = s * 1664525u + 1013904223u;
    float u = static_cast<float>(static_cast<int32_t>(s >> 8) - 8388608) / 8388608.0f;
    v = heavy ? ((u * u) * u) * 4.0f : u;
  }
  return x;
}

// Appendix B imatrix: qw[j] = 0.5 + (j % 13) * 0.125, identical for all rows.
std::vector<float> make_imatrix() {
  std::vector<float> qw(kCols);
  for (int j = 0; j < kCols; ++j) qw[j] = 0.5f + static_cast<float>(j % 13) * 0.125f;
  return qw;
}

std::string hex(const uint8_t* p, size_t n) {
  static const char* k = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += k[p[i] >> 4];
    s += k[p[i] & 15];
  }
  return s;
}

// One ggml_quantize_chunk-style call over the whole 16 x 1024 matrix (as Appendix B did).
std::vector<uint8_t> quantize_matrix(GgmlType type, const std::vector<float>& x,
                                     const float* imatrix) {
  std::vector<uint8_t> out(ggml_row_size(type, kCols) * kRows);
  const uint64_t written = quantize_rows(type, x.data(), out.data(), kRows, kCols, imatrix);
  EXPECT_EQ(written, out.size());
  return out;
}

std::string hash_of(GgmlType type, const std::vector<float>& x, const float* imatrix) {
  const auto q = quantize_matrix(type, x, imatrix);
  return test::sha256_hex(q.data(), q.size());
}

TEST(QuantVectors, InputsMatchSpec) {
  auto u = make_input(1, false), c = make_input(2, true);
  EXPECT_EQ(test::sha256_hex(u.data(), u.size() * 4),
            "d50266c631ba531c6d3a0d2640dfb0b17cb5bd3f02cec8cc0f80363799376e38");
  EXPECT_EQ(test::sha256_hex(c.data(), c.size() * 4),
            "8e67161d9ddc1a248a0ce58c7724c030676bdb03b8958417e55dde129b9445ae");
}

struct Vector {
  GgmlType type;
  const char* u_no;
  const char* u_yes;  // nullptr: imatrix ignored (Appendix B lists no separate hash)
  const char* c_no;
  const char* c_yes;
  const char* dequant;  // of the no-imatrix output of input U (nullptr: not given)
};

// Appendix B, verbatim.
const Vector kVectors[] = {
    {GgmlType::F16, "6f0fc59d2c9d64a00abebe66846976ace9f94d6a0bdcd419817cd3864360ee13", nullptr,
     "61c2ab5b0ad85452cd2f326643d52121b11c04e8b58c11dbe59fdfcfafd7b64c", nullptr, nullptr},
    {GgmlType::BF16, "71c0216050dd54decbc89a7aa8939f905efe236b5cf44135737f39c2de0fe331", nullptr,
     "b28c44fce919ce98ba7573471baaa99bcfce4f963c730e26577a90c10fd3f5c9", nullptr, nullptr},
    {GgmlType::Q4_0, "5848f40b39aaa46b1134639ab3131c02eb21061eec8ea857182502f2c735c3e2",
     "8b3afc74a088547091ef3b4afa470463d24d784787d255127c92b7a897f258d0",
     "ea45dc3b0999ebb925d0898d1cdc11896d4440eb27ca4d1a697c52c17a3438d9",
     "31a8c0f5bb2685cb1f5c52f7e2624d7cd3358a2fdf3837e6cfeedc02d30ee0ed",
     "4b7d3aef99909364db0734d8c63df3e20058d0f3ceeed5652f1a6178eff690e1"},
    {GgmlType::Q4_1, "0ff71a7b2a3ec1f75a0a91a626aa83da734e51e857549e1be747a5109fa268e5",
     "f162f080a26122052115be1436467c0447571c2fe83e31ce47b93896379fbd08",
     "fb7561daf3e0bd3dd4684edcca3c2f9ef1933e6f9f70e455515c10b101f101f0",
     "7462f61c9699f88b878fc7ed24734e6763fcc042f458a14db71b6196e212ba55",
     "a85f66d50918975860d2d1562981958085150d8312b921be0d522341bbd51665"},
    {GgmlType::Q5_0, "b48a9140e61638eaa31af56618be9b91bd3ee50cee7527f1984c163be875ae34",
     "fcff9407b20fa33ebdd08aeb564e5b5c1fcc37db8002e5f75563fb6742175bda",
     "797055bb43c7c21119c5d217032a6d2a726fee51bb62db6cef7687b283175a9c",
     "23c7cf80fd3c91b8c278385a2685c44c6f0a391f5401d056c4591d978f82fddf",
     "e9d0d11df5ddaadeb9ffb6927732f33fd85d991c6fc5feffb6692f931664408c"},
    {GgmlType::Q5_1, "6e3d63b54d854ce7e96bdd6a5b40608a53f5eacca587958f1c0cf8a49ac2d291",
     "37ef8f599651e0ab39c1888232eea745f1b1c55fdf3c88e4e4eb27204375c156",
     "927395da80735aa526d0325298898d39e689ae1691348cbbfb8249b55e9cca6c",
     "52e0f2b403ce8bba28ee544b763ed5929ca79d2ee751289aa0d2fbb77f03c772",
     "629e51f457fdcf6556abedfeb1322ee1c19661b4d19dafc3a983826e18908a73"},
    {GgmlType::Q8_0, "d9e36b737665bbaedd12ef3fcf6c57d58c2540ec31c14213e3955b0564bfac70", nullptr,
     "feb140c8bd441b9d8acc8ef2df55861024937d1b973f9a440fb4c735ab942b8f", nullptr,
     "5c66d91f67001b46f112c164259c035ad5f6517bc726d0949d96b37055a20862"},
    {GgmlType::Q2_K, "48297a577212a1dcd267e86dbba8ac5c94c9ef70eccd430cfef6921251b1e852",
     "9ce961a6160b7741a4db98e499d4820f4e5d6acde2bfe9d0e24b147920b6fae6",
     "0a6250766aa0d31c6fc8bed5348a7e72281f967a940429c8ee0ac415edf81c02",
     "1984777ee108d655744c614b87b4c7f4a7cde43ed36d5cc1a858476b052b10b9",
     "89a52266408581cd5a66b55f1efb96380c210a3f57e29035f0246f93b18a4e15"},
    {GgmlType::Q3_K, "d0b302ef190d1bf6966a8fe3805e83a3594417cc6d0b291708bec8ba966c4647",
     "cb41d03912d739cbb61221351fd4a7af614eddad719dc30b791d915b0eeae05e",
     "3fed0e7114ee2150c9a62a683eab439d6a1e23bff159092e8637dd39f97ab575",
     "acc0886639897f4f40b1d499b75dfe82277e7e36e826c460daa733161c8e6ab5",
     "b497e2a13b82b40f240830c1461470c3562ca5606e3ae57cd5f1ef77b7e12410"},
    {GgmlType::Q4_K, "25abb11286b0c0b435154a375c0fd9faf8181bfe746ca7c8bb2ac1eadf895859",
     "05f81ba2e4a8483c9b558b6c4a7705b03e4bb498958c9d0609b1a331258014c7",
     "cedf99467f84664cb4ff34a4eb031c8d31e602cbea2315bbf5b073598d10cb80",
     "eaf669d6c245dd3350ccb5852669a9c9d86a22ba93dc3ed16834ec62adf2c17f",
     "f986961e4409abeab6a009a059ab9bb556eca78c8016c49aa87620ebed9190f1"},
    {GgmlType::Q5_K, "1a605680a3aff0162a6e36186e5588b092e5814b24ba02e5166a9b841d2eaa9a",
     "6426b11b5ca56abde69c74d9ac63f2cdac5eea442f861044c109fa22fde8dbdd",
     "7853b8211a5af92fb9e02f49e38e35d85e771de4fbab69c24cd6de1965880257",
     "63a279bc5c84e4649367151ede987b9db21b7b6b52406033d98d087a783f70d6",
     "391731b71b664777488fe86baa51b1ae779157508c2bbf8699fec460465084da"},
    {GgmlType::Q6_K, "ca82ed6fb9123b520ce334c5dee8ba3f7007722b4fbb9411d64f8751aa365b89",
     "c4a91202d5859540984282ab7a4587d5757c7f7eb62e5d5546b87d3a023e4fa9",
     "d8ed5c5100594b4fcc5289e1a3c1975c9fe2b5482c7e8756394b5beebef966da",
     "4a8708e6809abb03bc3e6d2f1b4742177578184efde995fdefae5f6a1127f8b9",
     "5e60a093faf480d383d0b32071b890fb97d06e037fd556a62e5346115610b71e"},
    {GgmlType::IQ4_NL, "d1ca75bcd3d7ff6ce21654cdbeb41cce5d2a8251d3c3940cb5f648bc039232b9",
     "3020da432eb56054c98ee6e318226d3120bd902a3c52f5c4b2381eb82cb6db27",
     "01c6df7ef13bcfd16eebe45f0ee03483fe1944058d7b10cf7b3a37fcbe74b9d0",
     "4fab3473225b17899f3472b5f6681f2ef7afd36e5e11c244a32ac0436108fac1",
     "0a819b7570c7f7bf57d26e7d1923dd64aa4fbf641e457e2ba8690b00bceb1941"},
    {GgmlType::IQ4_XS, "96bdd266daca8bc44da552611f2fa025ca4e05cfb67323df68a870f563aaf85e",
     "ac9b6f994ef954c2a9d1a85d727a9745b9866afb113b6767751fe2245469b537",
     "a21f4b8adc6a3c81967f6f6b63ee951d0bf61934c1d148b42657123b87f0e856",
     "0668b40a7cb402c2c60b0d392332d114cc8065c668e4017e88c8717381ea8e91",
     "3363b206f6e85fb767715e151a1c0f5eeb8acf918b41a7906afff683696c42fc"},
};

class AppendixB : public ::testing::TestWithParam<Vector> {};

TEST_P(AppendixB, NoImatrix) {
  const Vector& v = GetParam();
  EXPECT_EQ(hash_of(v.type, make_input(1, false), nullptr), v.u_no) << "input U";
  EXPECT_EQ(hash_of(v.type, make_input(2, true), nullptr), v.c_no) << "input C";
}

TEST_P(AppendixB, WithImatrix) {
  const Vector& v = GetParam();
  const auto qw = make_imatrix();
  // Types that ignore the imatrix must reproduce their no-imatrix bytes.
  EXPECT_EQ(hash_of(v.type, make_input(1, false), qw.data()), v.u_yes ? v.u_yes : v.u_no)
      << "input U";
  EXPECT_EQ(hash_of(v.type, make_input(2, true), qw.data()), v.c_yes ? v.c_yes : v.c_no)
      << "input C";
  EXPECT_EQ(v.u_yes == nullptr, imatrix_use(v.type) == ImatrixUse::kIgnored);
}

TEST_P(AppendixB, RowByRowEqualsChunk) {
  // quantize_row on each row (with the row's imatrix) == one quantize_rows call.
  const Vector& v = GetParam();
  const auto x = make_input(2, true);
  const auto qw = make_imatrix();
  const uint64_t rb = ggml_row_size(v.type, kCols);
  for (const float* im : {static_cast<const float*>(nullptr), qw.data()}) {
    std::vector<uint8_t> rows(rb * kRows);
    for (int r = 0; r < kRows; ++r)
      quantize_row(v.type, x.data() + r * kCols, rows.data() + r * rb, kCols, im);
    EXPECT_EQ(rows, quantize_matrix(v.type, x, im)) << (im ? "imatrix" : "no imatrix");
  }
}

TEST_P(AppendixB, DequantMatchesGgml) {
  const Vector& v = GetParam();
  const auto q = quantize_matrix(v.type, make_input(1, false), nullptr);
  const uint64_t rb = ggml_row_size(v.type, kCols);
  std::vector<float> y(kRows * kCols);
  for (int r = 0; r < kRows; ++r)
    dequantize_row(v.type, q.data() + r * rb, y.data() + r * kCols, kCols);
  if (v.dequant != nullptr) {
    EXPECT_EQ(test::sha256_hex(y.data(), y.size() * 4), v.dequant);
  } else {
    // F16/BF16 (no hash in Appendix B): the widened values must convert back to the same bytes.
    EXPECT_EQ(quantize_matrix(v.type, y, nullptr), q);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, AppendixB, ::testing::ValuesIn(kVectors),
                         [](const ::testing::TestParamInfo<Vector>& info) {
                           return std::string(ggml_type_name(info.param.type));
                         });

TEST(QuantVectors, FirstBlocksMatchSpec) {
  struct FirstBlock {
    GgmlType type;
    const char* hex;
  };
  // Appendix B "first block of row 0 of input U (no imatrix)", lines joined.
  const FirstBlock kBlocks[] = {
      {GgmlType::Q4_0, "bc2fe456b89b31161d5920ba94674acef43f"},
      {GgmlType::Q4_1, "1d30bcbbd355a88b31151c5820ba946649bde33f"},
      {GgmlType::Q5_0, "bc2bccb20d66c7ac6017713c29a2407538cd838be75f"},
      {GgmlType::Q5_1, "f72bbcbbccb20d66b7ab5016613b28a1406428cd828ad75f"},
      {GgmlType::Q8_0, "cc1fbbde01368ade480f8125beec1859ba7e5fd33008b5988fd09f3616e0c24271ab"},
      {GgmlType::Q2_K,
       "ffccbcdcdeeeebffffeceeccdccdcb5ae5fd868af46d1e5aec3e61555ac3b5a3"
       "abed6642dca4bc51a412f6f11d5693087a5979156442ebd22eca89867bd56aa6"
       "1618788e1fac545fa1b9d1a2c32945388f292f2c"},
      {GgmlType::Q3_K,
       "fab8ffbfca907515f83122b7f50ffadbfecf0c51db0d6f592d006c2d7784e883"
       "66933431c1a306d87151ae8499be126f15dd0ed0fe4b7f326fa2ffb54e8e3457"
       "78b4b0f09d411ba6cc96c7117b7b560da54dc8f963a9c4c7ae9f0e7f3a7b368d"
       "117778a88b8367700cc3c3f027a1"},
      {GgmlType::Q4_K,
       "8a181124fefbfafffcfcfdfebccafc2453f5678a70f5dbb8e0f92356a82c732e"
       "9cd45a07e331c104620a5825c36b2d929cbe6070cf4c07569a1f4b3736b27e9b"
       "8ae97841e6a99e659c24dece06368500a8a78676600abe1bd7ac9579be34ab58"
       "6892b0c8fcc140de13a404163bb443a14d363c062951e9b517b290824ec65978"
       "25579ea154bc9797cbcdf7caf349823f"},
      {GgmlType::Q5_K,
       "22141724fefefffffdfcfdffccdfff287c2e610b4c16f3933eb7a49073897c5d"
       "1f6ee5b13aecceb0cce18dcc92618962a7fbc016e1fbb861e0f448bd525af75f"
       "2bbaa501e673a20ac416a24c98c84d35598de001bf990ebc553e977f8d840c37"
       "24f2f191fd714dea3848ecad0d6d2b10525f0efec0066f28b04a3bf46f7959b3"
       "c2347092fb9291af374a192e687a97539b7d5a0d54a2d37a2f7430049d8ca3f0"
       "5aa02e43a969303f888cfe95e693045f"},
      {GgmlType::Q6_K,
       "df48f0ed03c832745129101b56766f0f965d333eb54ddf5d2b11bad9c1ce6117"
       "ab01c70d52201872a26136e80416017556f8f531fdef85d16883c65814ca4917"
       "64be5dac814c6d4ff0840679ae937205d50821b4f6d5121e0e84425c40958f06"
       "adfb22ef49901dd598da67dfbdbf8cf60888af5c702c8d89ebe61fcd35a0dd05"
       "88c17ab6c841236690025d2966ff889fa8ee6541dfa3bf52b711f5f21f14900b"
       "ba99f9d5e4822b12de0b4946bb11ab66eaa44072a34068631c052d1d3f9578c4"
       "846e7b857c86808384868677847a6c7c1c8c"},
      {GgmlType::IQ4_NL, "1b20e345c89c31151d4920cba3563adef32f"},
      {GgmlType::IQ4_XS,
       "400cc33f2ff0fe4fe345b89c31151d4920cba3563adef32f6b10baf709d021f4"
       "a0f0beeb24aee85e53617fff907319ba35c114189a9eb1f3abfd7748fec4b075"
       "ab11f4e3032d980aa9270797e01c0ffc384e456bdf443d1a5cabd8d8f6d04ce1"
       "1ebb1a172cc34bb54e86fe164ad18a74d7e170b12ea62af8dbbc6d4fad3b5053"
       "2e2305270bb27ad8"},
  };
  const auto u = make_input(1, false);
  for (const auto& fb : kBlocks) {
    SCOPED_TRACE(ggml_type_name(fb.type));
    const auto& tr = traits(fb.type);
    ASSERT_EQ(std::strlen(fb.hex), 2u * tr.type_size);
    // The first block of a row does not depend on the rest of the row without an imatrix.
    std::vector<uint8_t> b(tr.type_size);
    quantize_row(fb.type, u.data(), b.data(), tr.block_size);
    EXPECT_EQ(hex(b.data(), b.size()), fb.hex);
    const auto full = quantize_matrix(fb.type, u, nullptr);
    EXPECT_EQ(hex(full.data(), tr.type_size), fb.hex);
  }
}

TEST(Fp16, AllHalfValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(f32_to_f16(f) & 0x7E00u, 0x7E00u);
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "half bits " << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);               // ties to even -> inf
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3C00);  // halfway, even stays
  EXPECT_EQ(f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3C02);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // halfway to smallest subnormal: even
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3F82);
}

}  // namespace
}  // namespace nibble
