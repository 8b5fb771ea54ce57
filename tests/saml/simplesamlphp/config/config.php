<?php
/*
 * SimpleSAMLphp 1.19 configuration for the Portcullis end-to-end tests: a
 * SAML 2.0 IdP on loopback, served by `php -S` (see router.php and
 * tests/e2e/simplesamlphp.py, which starts it with SIMPLESAMLPHP_CONFIG_DIR
 * pointing at this directory).  Everything that varies per run comes from
 * the environment:
 *
 *   SSP_TEST_WORK     run directory (keys, SP metadata, sessions, log, temp)
 *   SSP_TEST_BASEURL  http://127.0.0.1:PORT/  (the address php -S serves)
 *   SSP_TEST_SALT     random secret salt of this run
 *
 * Nothing is read from or written to /etc/simplesamlphp or /var.
 */

$work = getenv('SSP_TEST_WORK');
$baseurl = getenv('SSP_TEST_BASEURL');
$salt = getenv('SSP_TEST_SALT');
if ($work === false || $baseurl === false || $salt === false) {
    throw new \Exception('SSP_TEST_WORK, SSP_TEST_BASEURL and SSP_TEST_SALT must be set '
        . '(start this IdP with tests/e2e/simplesamlphp.py)');
}

$config = [
    'baseurlpath' => $baseurl,
    'certdir' => $work . '/',
    'loggingdir' => $work . '/log/',
    'datadir' => $work . '/data/',
    'tempdir' => $work . '/tmp',
    'metadatadir' => __DIR__ . '/../metadata/',
    'attributenamemapdir' => '/usr/share/simplesamlphp/attributemap/',

    'technicalcontact_name' => 'Portcullis tests',
    'technicalcontact_email' => 'tests@example.com',
    'timezone' => 'UTC',
    'secretsalt' => $salt,
    'auth.adminpassword' => bin2hex(random_bytes(16)),
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,   // no network
    'trusted.url.domains' => ['127.0.0.1', 'localhost'],
    'trusted.url.regex' => false,
    'enable.http_post' => false,
    'assertion.allowed_clock_skew' => 180,

    'debug' => ['saml' => false, 'backtraces' => true, 'validatexml' => false],
    'showerrors' => true,
    'errorreporting' => false,
    'production' => true,

    'logging.level' => \SimpleSAML\Logger::DEBUG,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',
    'logging.processname' => 'simplesamlphp',
    'statistics.out' => [],

    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => [
        'core' => true,
        'saml' => true,
        'exampleauth' => true,
        'admin' => true,
    ],

    'store.type' => 'phpsession',
    'session.duration' => 8 * 3600,
    'session.datastore.timeout' => 4 * 3600,
    'session.state.timeout' => 3600,
    'session.cookie.name' => 'SimpleSAMLSessionID',
    'session.cookie.lifetime' => 0,
    'session.cookie.path' => '/',
    'session.cookie.domain' => null,
    'session.cookie.secure' => false,   // plain HTTP on loopback
    'session.cookie.samesite' => null,
    'session.phpsession.cookiename' => 'SimpleSAML',
    'session.phpsession.savepath' => $work . '/sessions',
    'session.phpsession.httponly' => true,
    'session.authtoken.cookiename' => 'SimpleSAMLAuthToken',
    'session.rememberme.enable' => false,

    'language.available' => ['en'],
    'language.default' => 'en',
    'language.cookie.secure' => false,
    'theme.use' => 'default',
    'template.auto_reload' => false,

    'metadata.sources' => [['type' => 'flatfile']],
    'metadata.sign.enable' => false,
];
